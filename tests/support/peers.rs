//! The outside programs the tests put around the gate, as an admin would: swaks as the client,
//! HAProxy in front (PROXY protocol), Postfix's smtp-sink behind (and a whole private Postfix:
//! [`super::postfix`]), Chromium to open the report.
//! Tests that need one are marked `#[cfg_attr(not(feature = "peers"), ignore = ...)]`:
//! `cargo test` alone stays hermetic, `scripts/test.sh` installs the peers and runs them all.

use super::binary::{eventually, free_port, Binary};
use super::config::cert;
use super::repo;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// swaks against `server`, giving up after 20 s, with `args` after that.
pub fn swaks_at(server: &str, args: &[&str]) -> Output {
    Command::new("swaks")
        .args(["--server", server, "--timeout", "20"])
        .args(args)
        .output()
        .expect("swaks must be installed (apt-get install swaks); scripts/test.sh installs it")
}

/// swaks against the gate, with a body whose second line swaks must dot-stuff: (it succeeded,
/// its whole transcript).
pub fn swaks(gate: &Binary, args: &[&str]) -> (bool, String) {
    let body = ["--body", "Hello from swaks\n..a dot-stuffed line"];
    let out = swaks_at(&gate.addr.to_string(), &[&body[..], args].concat());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// [`swaks`] with STARTTLS and the shipped client certificate `name` (`certs/NAME.pem` and
/// `certs/NAME.key`).
pub fn swaks_tls(gate: &Binary, name: &str, args: &[&str]) -> (bool, String) {
    let (pem, key) = (cert(&format!("{name}.pem")), cert(&format!("{name}.key")));
    let tls = ["--tls", "--tls-cert", &pem, "--tls-key", &key];
    swaks(gate, &[&tls[..], args].concat())
}

/// The first of `paths` that exists: where Debian puts a peer's program.
pub(super) fn installed(paths: &[&'static str], install: &str) -> &'static str {
    paths
        .iter()
        .copied()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("{install}; scripts/test.sh installs it"))
}

/// HAProxy on the shipped `deploy/kubernetes/haproxy.cfg`, killed on drop.
pub struct Haproxy(Child);

impl Haproxy {
    /// HAProxy listening on `front` for clients, sending them to `backend` with a PROXY v2
    /// header, and reporting its own health on `monitor`.
    pub fn start(backend: SocketAddr, front: SocketAddr, monitor: SocketAddr) -> Haproxy {
        let haproxy = installed(
            &["/usr/sbin/haproxy", "/usr/bin/haproxy"],
            "HAProxy must be installed (apt-get install haproxy)",
        );
        Haproxy(
            Command::new(haproxy)
                // -n: this sandbox caps open files at 20,000, below what maxconn 10000 needs.
                .args(["-db", "-n", "1000", "-f"])
                .arg(repo().join("deploy/kubernetes/haproxy.cfg"))
                .env("RELAYGATE_BACKEND", backend.to_string())
                .env("RELAYGATE_SLOTS", "1")
                .env("HAPROXY_BIND", front.to_string())
                .env("HAPROXY_MONITOR_BIND", monitor.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start haproxy"),
        )
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Postfix's smtp-sink as the upstream, dumping each transaction to a file; killed on drop.
pub struct SmtpSink {
    child: Child,
    pub addr: SocketAddr,
    pub dumps: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start smtp-sink on a free port and wait (bounded) until it listens.
pub fn smtp_sink() -> SmtpSink {
    use std::os::unix::fs::PermissionsExt;
    let dumps = tempfile::tempdir().unwrap();
    // smtp-sink drops privileges to -u; the dump directory must be writable for it.
    std::fs::set_permissions(dumps.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let addr = free_port();
    let sink = installed(
        &["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"],
        "smtp-sink must be installed (apt-get install postfix)",
    );
    let child = Command::new(sink)
        .args(["-u", "nobody", "-d"])
        .arg(format!("{}/%H%M%S.", dumps.path().display()))
        .arg(addr.to_string())
        .arg("16")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start smtp-sink");
    eventually("smtp-sink listening", || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
    SmtpSink { child, addr, dumps }
}

/// Debian's Chromium, which renders the HTML report headless.
pub const CHROMIUM: &str = "/usr/bin/chromium";
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs chromium with `args`, stdout to `stdout`, killing it after [`BROWSER_TIMEOUT`].
pub fn run_chromium(work: &Path, args: &[String], stdout: &Path) {
    let profile = tempfile::tempdir_in(work).unwrap();
    let stderr_path = work.join(format!(
        "chromium-stderr-{}.txt",
        stdout.file_stem().unwrap().to_string_lossy()
    ));
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(stdout).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {args:?} did not finish within {BROWSER_TIMEOUT:?}; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "chromium {args:?} failed ({status}); stderr:\n{}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
}
