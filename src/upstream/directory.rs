//! The directory leg: each accepted message becomes `<id>.eml` plus `<id>.envelope.json`.
//!
//! Both are written under `<path>/.tmp/`, fsynced, then renamed into `<path>/` (message first,
//! envelope last) and the directory fsynced, and only then is 250 answered. A reader that sees
//! an envelope file can rely on its message being complete. What a killed gate leaves in
//! `.tmp/` was never acknowledged; [`DirectoryLeg::remove_stale_temporary_files`] clears it at
//! the next start.

use super::{ClientFacts, Envelope, UpstreamError, UpstreamReply};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio::io::{AsyncWriteExt, BufWriter};

struct Open {
    id: String,
    file: BufWriter<tokio::fs::File>,
    tmp_path: PathBuf,
    client: ClientFacts,
}

impl Drop for Open {
    /// However the message ends (refused, aborted, the session dropped at shutdown), a
    /// temporary file left behind would be a half message: remove it. After a successful
    /// rename there is nothing left at this path and this does nothing.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp_path);
    }
}

pub struct DirectoryLeg {
    path: PathBuf,
    envelope: Envelope,
    recipients: Vec<String>,
    open: Option<Open>,
    counter: u32,
}

#[derive(serde::Serialize)]
struct EnvelopeFile<'a> {
    id: &'a str,
    received_at: String,
    mail_from: &'a str,
    rcpt_to: &'a [String],
    size: u64,
    body_8bitmime: bool,
    smtputf8: bool,
    client: &'a ClientFacts,
}

fn storage(what: &str, e: std::io::Error) -> UpstreamError {
    UpstreamError::Storage {
        what: what.to_string(),
        source: e,
    }
}

impl DirectoryLeg {
    /// Remove the files in `<path>/.tmp/` and return how many there were. A session removes its
    /// own temporary file however it ends, except when the process dies (kill -9, a crash, a
    /// power cut): then it stays for ever. No client was ever answered 250 for it (that comes
    /// only after the rename), so the client still has the message and nothing is lost. Only
    /// for a start, before listening: while a gate runs, its sessions' files are in there.
    /// (An associated function so that `main` reaches it through the re-exported type.)
    pub fn remove_stale_temporary_files(path: &Path) -> std::io::Result<usize> {
        let tmp = path.join(".tmp");
        let entries = match std::fs::read_dir(&tmp) {
            Ok(entries) => entries,
            // No message was ever started here.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            // Nothing but the leg's own files belongs here; leave anything else alone.
            if entry.file_type()?.is_file() {
                let file = entry.path();
                std::fs::remove_file(&file).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", file.display()))
                })?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn new(path: PathBuf) -> DirectoryLeg {
        DirectoryLeg {
            path,
            envelope: Envelope::default(),
            recipients: Vec::new(),
            open: None,
            counter: 0,
        }
    }

    pub fn mail(&mut self, env: &Envelope) -> UpstreamReply {
        self.envelope = env.clone();
        self.recipients.clear();
        UpstreamReply::local(250, "2.1.0 Sender OK")
    }

    pub fn rcpt(&mut self, address: &str) -> UpstreamReply {
        self.recipients.push(address.to_string());
        UpstreamReply::local(250, "2.1.5 Recipient OK")
    }

    pub async fn data(&mut self, client: &ClientFacts) -> Result<UpstreamReply, UpstreamError> {
        self.abort().await;
        let tmp_dir = self.path.join(".tmp");
        tokio::fs::create_dir_all(&tmp_dir)
            .await
            .map_err(|e| storage(&format!("creating {}", tmp_dir.display()), e))?;
        self.counter += 1;
        let id = format!("{}-{:04}", client.session_id, self.counter);
        let tmp_path = tmp_dir.join(format!("{id}.eml"));
        let file = tokio::fs::File::create(&tmp_path)
            .await
            .map_err(|e| storage(&format!("creating {}", tmp_path.display()), e))?;
        self.open = Some(Open {
            id,
            file: BufWriter::with_capacity(64 * 1024, file),
            tmp_path,
            client: client.clone(),
        });
        Ok(UpstreamReply::local(
            354,
            "Start mail input; end with <CRLF>.<CRLF>",
        ))
    }

    pub async fn write_text(&mut self, text: &[u8]) -> Result<(), UpstreamError> {
        let open = self.open.as_mut().ok_or_else(|| {
            storage(
                "no message open",
                std::io::Error::other("DATA was not started"),
            )
        })?;
        open.file
            .write_all(text)
            .await
            .map_err(|e| storage("writing message", e))
    }

    pub async fn finish_data(&mut self) -> Result<UpstreamReply, UpstreamError> {
        let mut open = self.open.take().ok_or_else(|| {
            storage(
                "no message open",
                std::io::Error::other("DATA was not started"),
            )
        })?;
        // On failure, dropping `open` removes the temporary message; the envelope goes here.
        let result = self.commit(&mut open).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(open.tmp_path.with_extension("envelope.json")).await;
        }
        result
    }

    async fn commit(&self, open: &mut Open) -> Result<UpstreamReply, UpstreamError> {
        open.file
            .flush()
            .await
            .map_err(|e| storage("writing message", e))?;
        let file = open.file.get_mut();
        file.sync_all()
            .await
            .map_err(|e| storage("fsync of message", e))?;
        let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);

        let env = EnvelopeFile {
            id: &open.id,
            received_at: crate::wire::reply::iso8601_millis(SystemTime::now()),
            mail_from: &self.envelope.mail_from,
            rcpt_to: &self.recipients,
            size,
            body_8bitmime: self.envelope.eight_bit,
            smtputf8: self.envelope.smtputf8,
            client: &open.client,
        };
        let json = serde_json::to_vec_pretty(&env)
            .map_err(|e| storage("serialising the envelope", std::io::Error::other(e)))?;
        let tmp_env = open.tmp_path.with_extension("envelope.json");
        let mut f = tokio::fs::File::create(&tmp_env)
            .await
            .map_err(|e| storage("creating envelope", e))?;
        f.write_all(&json)
            .await
            .map_err(|e| storage("writing envelope", e))?;
        f.sync_all()
            .await
            .map_err(|e| storage("fsync of envelope", e))?;
        drop(f);

        let final_eml = self.path.join(format!("{}.eml", open.id));
        let final_env = self.path.join(format!("{}.envelope.json", open.id));
        tokio::fs::rename(&open.tmp_path, &final_eml)
            .await
            .map_err(|e| storage("renaming message", e))?;
        tokio::fs::rename(&tmp_env, &final_env)
            .await
            .map_err(|e| storage("renaming envelope", e))?;
        // The renames are durable only once the directory itself is synced.
        let dir = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| storage("opening directory", e))?;
        dir.sync_all()
            .await
            .map_err(|e| storage("fsync of directory", e))?;
        Ok(UpstreamReply::local(
            250,
            &format!("2.6.0 Message accepted, stored as {}.eml", open.id),
        ))
    }

    pub async fn abort(&mut self) {
        // Dropping the open message removes its temporary file.
        self.open = None;
    }

    pub async fn reset(&mut self) {
        self.abort().await;
        self.recipients.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporary_files_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            DirectoryLeg::remove_stale_temporary_files(dir.path()).unwrap(),
            0,
            "no .tmp yet"
        );
        let tmp = dir.path().join(".tmp");
        std::fs::create_dir_all(tmp.join("not-ours")).unwrap();
        std::fs::write(tmp.join("A-0001.eml"), "half a message").unwrap();
        std::fs::write(tmp.join("A-0002.envelope.json"), "{").unwrap();
        std::fs::write(dir.path().join("B-0001.eml"), "delivered").unwrap();
        assert_eq!(
            DirectoryLeg::remove_stale_temporary_files(dir.path()).unwrap(),
            2
        );
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["not-ours"]);
        assert!(
            dir.path().join("B-0001.eml").exists(),
            "delivered messages stay"
        );
    }
}
