//! The directory leg: each accepted message becomes `<id>.eml` plus `<id>.envelope.json`.
//!
//! Both are written under `<path>/.tmp/`, fsynced, then renamed into `<path>/` (message first,
//! envelope last) and the directory fsynced, and only then is 250 answered. A reader that sees
//! an envelope file can rely on its message being complete.

use super::{ClientFacts, Envelope, UpstreamError, UpstreamReply};
use std::path::PathBuf;
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
    UpstreamError::Storage(format!("{what}: {e}"))
}

impl DirectoryLeg {
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
        let open = self
            .open
            .as_mut()
            .ok_or_else(|| UpstreamError::Storage("no message open".into()))?;
        open.file
            .write_all(text)
            .await
            .map_err(|e| storage("writing message", e))
    }

    pub async fn finish_data(&mut self) -> Result<UpstreamReply, UpstreamError> {
        let mut open = self
            .open
            .take()
            .ok_or_else(|| UpstreamError::Storage("no message open".into()))?;
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
            received_at: crate::smtp::reply::iso8601_millis(SystemTime::now()),
            mail_from: &self.envelope.mail_from,
            rcpt_to: &self.recipients,
            size,
            body_8bitmime: self.envelope.eight_bit,
            smtputf8: self.envelope.smtputf8,
            client: &open.client,
        };
        let json =
            serde_json::to_vec_pretty(&env).map_err(|e| UpstreamError::Storage(e.to_string()))?;
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
