//! A private Postfix as the gate's upstream: Postfix's own smtpd, which offers PIPELINING,
//! SIZE, 8BITMIME, DSN, SMTPUTF8, CHUNKING and (with [`STARTTLS`]) STARTTLS, as the gate meets
//! it in front of an on-premises Postfix.
//!
//! The instance is the test's own, never the system's: `postfix -c DIR start` on a main.cf and
//! master.cf written into a temporary directory that also holds its queue, data and mail
//! directories and its log (`maillog`), its smtpd on a free 127.0.0.1 port. /etc/postfix is
//! only read (by `postfix check`), and nothing the machine's own Postfix uses is shared, so any
//! number of these run side by side. It needs root and the `postfix` user and `postdrop` group
//! (`apt-get install postfix`), as any Postfix does: its daemons drop to `postfix` themselves.
//!
//! Every accepted message is delivered by Postfix's `virtual` agent to a maildir per recipient
//! (see [`MAILBOXES`]): one file per recipient holding the message as received, with LF line
//! ends, after the four header fields Postfix puts first (`Return-Path:` the envelope sender,
//! `X-Original-To:` and `Delivered-To:` the recipient, its own `Received:`), which
//! [`Delivery`] takes apart. Any other recipient at example.org gets Postfix's own `550 5.1.1
//! ... User unknown in virtual mailbox table`.

use super::binary::{eventually, free_port};
use super::config::cert;
use super::peers::installed;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The recipients Postfix delivers (at example.org); any other address there is refused.
pub const MAILBOXES: [&str; 2] = ["bob", "carol"];

/// The name Postfix greets with and puts in its `Received:` field (`by upstream.example.org`).
pub const POSTFIX_HOSTNAME: &str = "upstream.example.org";

/// main.cf lines for STARTTLS on the shipped development certificate (`certs/gate.pem`, which
/// names `localhost`, under `certs/ca.pem`).
pub fn starttls() -> String {
    format!(
        "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\n",
        cert("gate.pem"),
        cert("gate.key")
    )
}

/// main.cf lines for an smtpd that does not offer CHUNKING, so the gate sends DATA.
pub const NO_CHUNKING: &str = "smtpd_discard_ehlo_keywords = chunking\n";

/// The uid and gid `virtual` delivers as: Debian's nobody/nogroup (any uid at or above
/// `virtual_minimum_uid`, 100, would do; this one exists everywhere).
const MAIL_UID: u32 = 65534;

/// A running private Postfix, stopped (and its processes waited for) on drop.
pub struct Postfix {
    /// Where its smtpd listens.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Postfix {
    /// Start an instance whose main.cf ends with `extra` (e.g. [`NO_CHUNKING`], [`starttls`]),
    /// and wait (bounded) until its smtpd answers 220.
    pub fn start(extra: &str) -> Postfix {
        use std::os::unix::fs::{chown, PermissionsExt};
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // Postfix's daemons run as `postfix` and `nobody`: they must reach their directories.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["etc", "spool", "mail"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        chown(root.join("mail"), Some(MAIL_UID), Some(MAIL_UID)).expect("chown (needs root)");
        let addr = free_port();
        std::fs::write(root.join("etc/main.cf"), main_cf(root) + extra).unwrap();
        std::fs::write(root.join("etc/master.cf"), master_cf(addr)).unwrap();
        let postfix = Postfix { addr, dir };
        // `check` creates the queue's subdirectories and the data directory with their owners;
        // `start` returns once the master has opened its listeners.
        for command in ["check", "start"] {
            let ok = postfix.command(command).success();
            assert!(ok, "postfix {command} failed; its log:\n{}", postfix.log());
        }
        eventually(&format!("Postfix's 220 on {addr}"), || {
            greeting(addr).is_some_and(|g| g.starts_with("220 "))
        });
        postfix
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// `postfix -c DIR COMMAND`; its messages go to the instance's log, not to stderr.
    fn command(&self, command: &str) -> std::process::ExitStatus {
        let postfix = installed(
            &["/usr/sbin/postfix"],
            "Postfix must be installed (apt-get install postfix)",
        );
        Command::new(postfix)
            .arg("-c")
            .arg(self.config_dir())
            .arg(command)
            .status()
            .expect("run postfix")
    }

    /// Everything the instance logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// A message still in the instance's queue (a notification it is trying to send), as
    /// `postcat -q` prints it: envelope records and content.
    pub fn queued(&self, queue_id: &str) -> String {
        let postcat = installed(
            &["/usr/sbin/postcat"],
            "Postfix must be installed (apt-get install postfix)",
        );
        let out = Command::new(postcat)
            .arg("-c")
            .arg(self.config_dir())
            .args(["-q", queue_id])
            .output()
            .expect("run postcat");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The messages delivered to `mailbox` (one of [`MAILBOXES`]) so far, in name order.
    pub fn delivered(&self, mailbox: &str) -> Vec<Delivery> {
        let new = self.dir.path().join("mail").join(mailbox).join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(new)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().map(|f| Delivery::read(f)).collect()
    }

    /// Wait (bounded) for the first message in `mailbox` and return it. `virtual` writes into
    /// `tmp/` and renames into `new/`: a file there is whole.
    pub fn wait_for_delivery(&self, mailbox: &str) -> Delivery {
        let mut first = None;
        eventually(&format!("a message in {mailbox}'s maildir"), || {
            first = self.delivered(mailbox).into_iter().next();
            first.is_some()
        });
        first.expect("waited for it")
    }

    /// Wait (bounded) for smtpd's `disconnect from` line of the first session that sent mail
    /// (not the readiness probe's), and return it: it counts the commands the client sent
    /// (`ehlo=1 mail=1 rcpt=2 bdat=1 quit=1 commands=6`).
    pub fn wait_for_disconnect(&self) -> String {
        let mut line = None;
        eventually("Postfix's disconnect line", || {
            line = self
                .log()
                .lines()
                .find(|l| {
                    l.contains("postfix/smtpd[")
                        && l.contains(": disconnect from ")
                        && l.contains(" mail=")
                })
                .map(str::to_string);
            line.is_some()
        });
        line.expect("waited for it")
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // The master leads its own process group; `postfix stop` signals it, waits up to 5 s,
        // and then kills the group. The temporary directory goes only when none of it is left.
        let master = std::fs::read_to_string(self.dir.path().join("spool/pid/master.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        let _ = self.command("stop");
        let Some(master) = master else { return };
        let deadline = Instant::now() + Duration::from_secs(20);
        while alive_in_group(master) {
            if Instant::now() > deadline {
                // No panic in drop: the test's own verdict stands; say what is left behind.
                eprintln!("Postfix processes of group {master} still running after 20 s");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One message as `virtual` stored it for one recipient, taken apart.
#[derive(Debug)]
pub struct Delivery {
    /// `Return-Path:`: the envelope sender, in angle brackets.
    pub return_path: String,
    /// `Delivered-To:`: the envelope recipient.
    pub recipient: String,
    /// Postfix's own `Received:` field (`... by upstream.example.org (Postfix) with ESMTP ...`).
    pub received: String,
    /// Everything after those: the message exactly as the gate sent it, with LF line ends.
    pub message: Vec<u8>,
}

impl Delivery {
    fn read(path: &Path) -> Delivery {
        let file = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut rest = &file[..];
        let mut take = |name: &str| {
            let (field, after) = split_field(rest)
                .unwrap_or_else(|| panic!("no {name}: field in {}", path.display()));
            let text = String::from_utf8_lossy(field).into_owned();
            assert!(
                text.starts_with(&format!("{name}: ")),
                "Postfix's {name}: expected, got {text:?}"
            );
            rest = after;
            text[name.len() + 2..].trim_end().to_string()
        };
        let return_path = take("Return-Path");
        take("X-Original-To");
        let recipient = take("Delivered-To");
        let received = format!("Received: {}", take("Received"));
        assert!(
            received.contains(&format!("by {POSTFIX_HOSTNAME} (Postfix)")),
            "not Postfix's own Received: {received:?}"
        );
        Delivery {
            return_path,
            recipient,
            received,
            message: rest.to_vec(),
        }
    }
}

/// The first header field of `text` (with its folded lines) and what follows it.
fn split_field(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut end = 0;
    loop {
        end += text[end..].iter().position(|b| *b == b'\n')? + 1;
        if !matches!(text.get(end), Some(b' ' | b'\t')) {
            return Some(text.split_at(end));
        }
    }
}

/// The first line a new connection to `addr` gets, if it gets one.
fn greeting(addr: SocketAddr) -> Option<String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    Some(line)
}

/// Whether a process of group `pgid` is still running (zombies, already dead and waiting for
/// init to reap them, do not count).
fn alive_in_group(pgid: u32) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.filter_map(|e| e.ok()).any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, f)| f.split_whitespace().collect())
            .unwrap_or_default();
        fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z")
    })
}

/// main.cf: every directory under `root`, loopback only, mail for example.org to maildirs.
fn main_cf(root: &Path) -> String {
    let root = root.display();
    let mailboxes = MAILBOXES
        .map(|m| format!("{m}@example.org={m}/"))
        .join(", ");
    format!(
        "# A private instance for relaygate's tests: nothing here is the system's Postfix.
compatibility_level = 3.6
config_directory = {root}/etc
queue_directory = {root}/spool
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = {POSTFIX_HOSTNAME}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# No local delivery, no aliases (the default alias_maps looks in NIS).
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
# Headers of mail from 127.0.0.1 stay as sent (no added Date:, Message-ID:, domains).
local_header_rewrite_clients =
virtual_mailbox_domains = example.org
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = inline:{{ {mailboxes} }}
virtual_uid_maps = static:{MAIL_UID}
virtual_gid_maps = static:{MAIL_UID}
"
    )
}

/// master.cf: smtpd on `addr` and the services mail needs to reach a maildir; nothing
/// chrooted (a chroot would need copies of system files in the queue directory).
fn master_cf(addr: SocketAddr) -> String {
    format!(
        "{addr} inet n - n - - smtpd
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
proxymap  unix  - - n -    - proxymap
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
virtual   unix  - n n -    - virtual
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"
    )
}
