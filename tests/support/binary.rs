//! The real `relaygate` binary, as an admin runs it: `relaygate serve` as a child process on
//! the shipped development certificates, writing its JSON log to a file, and the one-shot
//! commands (`check`, `config check`, `import-exo`, `report`) with their exit status.
//!
//! Everything here blocks (std, not tokio): the binary is another process, and waiting for it
//! is waiting for a condition, bounded by [`eventually`].

use super::config::{dev_tls, directory_upstream, onprem_tenant, HOSTNAME};
use super::repo;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `relaygate serve`, killed on drop.
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
    /// The directory upstream's directory: what was delivered.
    pub out: tempfile::TempDir,
    /// The configuration (`relaygate.toml`) and the log (`relaygate.log`).
    pub dir: tempfile::TempDir,
}

impl Binary {
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("relaygate.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("relaygate.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The log's JSON events so far (lines that are not JSON are left out).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The event of the transaction whose P1 is `p1`, waiting (bounded) until it is logged.
    pub fn transaction(&self, p1: &str) -> serde_json::Value {
        let mut event = None;
        eventually(&format!("the transaction event of {p1}"), || {
            event = self
                .events()
                .into_iter()
                .find(|v| v["message"] == "transaction" && v["p1"] == p1);
            event.is_some()
        });
        event.unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The standard test configuration: listening on `addr`, TLS on the shipped development
/// certificates, the [`onprem_tenant`] with its IP connector covering `ip_range`, messages to
/// the directory `out`, and the JSON log. `server_extra` goes into `[server]`.
pub fn config_text_with(
    addr: SocketAddr,
    ip_range: &str,
    hostname: &str,
    out: &Path,
    server_extra: &str,
) -> String {
    format!(
        "\n[server]\nhostname = \"{hostname}\"\nlisten = [\"{addr}\"]\n{server_extra}\n\n{}{}\n{}\n[log]\nformat = \"json\"\n",
        dev_tls(),
        onprem_tenant(ip_range),
        directory_upstream(out),
    )
}

pub fn config_text(addr: SocketAddr, ip_range: &str, hostname: &str, out: &Path) -> String {
    config_text_with(addr, ip_range, hostname, out, "")
}

/// Start the binary with a configuration whose IP connector covers `ip_range`.
pub fn start(ip_range: &str) -> Binary {
    start_with(ip_range, "")
}

pub fn start_with(ip_range: &str, server_extra: &str) -> Binary {
    start_edited(ip_range, server_extra, |c| c)
}

/// Start the binary on the standard test configuration as changed by `edit`.
pub fn start_edited(
    ip_range: &str,
    server_extra: &str,
    edit: impl FnOnce(String) -> String,
) -> Binary {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    // Ask the OS for a free port, then hand it to the binary.
    let addr = free_port();
    let config = edit(config_text_with(
        addr,
        ip_range,
        HOSTNAME,
        out.path(),
        server_extra,
    ));
    let path = dir.path().join("relaygate.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let child = serve(&path, &dir.path().join("relaygate.log"));
    let bin = Binary {
        child,
        addr,
        out,
        dir,
    };
    // Wait (bounded) until the gate accepts connections.
    eventually(&format!("relaygate listening on {addr}"), || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
    bin
}

/// `relaygate serve --config CONFIG`, its log (stdout) to the file `log`, started afresh.
pub fn serve(config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_relaygate"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .expect("start relaygate")
}

/// Wait (bounded) for a condition that the gate makes true asynchronously.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Blocking SMTP to the binary, a line at a time, every reply checked by its code.
pub struct LineClient {
    writer: TcpStream,
    reader: std::io::BufReader<TcpStream>,
}

impl LineClient {
    /// Connect; nothing is read yet (not even the banner).
    pub fn connect(addr: SocketAddr) -> LineClient {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        LineClient {
            reader: std::io::BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    /// Send `line` and CRLF.
    pub fn send(&mut self, line: &str) {
        write!(self.writer, "{line}\r\n").unwrap();
    }

    /// Read one reply (every line of it); each line must start with `code`.
    pub fn expect(&mut self, code: &str) {
        use std::io::BufRead;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            assert!(line.starts_with(code), "expected {code}, got {line:?}");
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    }
}

/// The first line the gate says to a new connection.
pub fn banner(addr: SocketAddr) -> String {
    use std::io::{BufRead, BufReader};
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

/// Send `sig` ("-HUP", "-TERM") to the gate, as an admin does with kill.
pub fn signal(gate: &Binary, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &gate.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// The resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// A loopback address nothing listens on (yet).
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One HTTP/1.1 GET against the admin endpoint: (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: relaygate\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

/// Run `relaygate ARGS` in the repository to completion: (exit status, stdout, stderr).
pub fn relaygate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_relaygate"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run relaygate");
    (
        out.status.code().expect("exit status"),
        String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run `relaygate ARGS` in the repository like [`relaygate`], but kill it and fail the test if
/// it has not exited within 20 seconds (a generous bound: these commands exit in milliseconds,
/// or never).
pub fn relaygate_bounded(args: &[&str]) -> (i32, String, String) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_relaygate"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run relaygate");
    // Drain both pipes while waiting, so a chatty process cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("relaygate {args:?} did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code().expect("exit status"),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

/// A configuration file for one-shot commands: the standard test configuration with the IP
/// connector on 203.0.113.0/24, and `extra` at the end. Returns its path.
pub fn write_config(dir: &Path, extra: &str) -> String {
    let out = dir.join("out");
    let text = config_text(
        "127.0.0.1:2525".parse().unwrap(),
        "203.0.113.0/24",
        HOSTNAME,
        &out,
    ) + extra;
    let path = dir.join("check.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `relaygate serve` on the standard test configuration (listening on `addr`) as changed by
/// `edit`: (exit status, log, stderr). It must refuse to start.
pub fn serve_refused(edit: impl FnOnce(String, SocketAddr) -> String) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let config = edit(
        config_text(addr, "127.0.0.0/24", HOSTNAME, &dir.path().join("out")),
        addr,
    );
    let path = dir.path().join("relaygate.toml");
    std::fs::write(&path, config).unwrap();
    relaygate_bounded(&["serve", "--config", path.to_str().unwrap()])
}
