//! `[admin] listen`: a small HTTP/1.1 endpoint for Prometheus and for orchestrators' probes.
//!
//! - `GET /metrics`: the counters of [`crate::observe::metrics`], OpenMetrics text.
//! - `GET /health/live`: 200 while the process can answer at all (restart it otherwise).
//! - `GET /health/ready`: 200 when the SMTP listeners are bound, a configuration is loaded,
//!   the gate is not draining, and the last upstream probe (connect, EHLO, STARTTLS as
//!   configured) succeeded and is recent; 503 otherwise, with the failing check in the body.
//!   A load balancer then sends no new clients to a gate that could only answer 4xx.
//!   Each configured upstream address gets a line of its own (`up` or `down` and why); one
//!   address down is not a failure while another takes mail (failover).
//!
//! No web framework: three fixed GET routes, one request per connection, bounded reads and a
//! timeout are all it needs. Requests are parsed by `httparse` (hyper's own parser, without
//! hyper's tree); the answers are three fixed header lines and a body.

pub use crate::observe::health::Health;
use crate::observe::metrics::metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest request head read; anything longer is answered 431.
const MAX_REQUEST: usize = 8192;
/// A scraper or probe that does not finish its request head in this time is dropped, so idle
/// connections cannot hold the slots for long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Writing the answer (a /metrics page to a slow reader) gets this long.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Concurrent admin connections; beyond that new ones get an immediate 503.
const MAX_CONNECTIONS: usize = 64;

/// Serve the admin endpoint until the task is dropped.
pub async fn serve(listener: TcpListener, health: Arc<Health>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            // Without a task: a probe sees "busy" at once instead of timing out.
            let _ = stream.try_write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            continue;
        };
        let health = Arc::clone(&health);
        tokio::spawn(async move {
            let _ = handle(stream, &health).await;
            drop(permit);
        });
    }
}

async fn handle(mut stream: TcpStream, health: &Health) -> std::io::Result<()> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await;
    let Ok(head) = head else {
        return Ok(());
    };
    let head = match head? {
        None => return Ok(()),
        Some(head) => head,
    };
    let answer = async {
        match head {
            Err(BadRequest::TooLarge) => {
                respond(&mut stream, false, 431, "text/plain", "request too large\n").await
            }
            Err(BadRequest::Malformed) => {
                respond(
                    &mut stream,
                    false,
                    400,
                    "text/plain",
                    "not an HTTP request\n",
                )
                .await
            }
            Ok(head) => route(&mut stream, &head, health).await,
        }
    };
    tokio::time::timeout(RESPONSE_TIMEOUT, answer)
        .await
        .unwrap_or(Ok(()))
}

/// What the endpoint needs of a request: its method and path (query string removed).
struct Head {
    method: String,
    path: String,
}

/// A request that cannot be answered by route.
enum BadRequest {
    /// Longer than [`MAX_REQUEST`], or more header fields than are read: 431.
    TooLarge,
    /// Not HTTP/1.x: 400.
    Malformed,
}

/// Header fields parsed per request; a probe or scraper sends a handful.
const MAX_HEADERS: usize = 32;

/// Read and parse the request head (httparse: CRLF or bare LF line ends, as clients send
/// either). `None` when the client closed first.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Result<Head, BadRequest>>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let path = request.path.unwrap_or("");
                return Ok(Some(Ok(Head {
                    method: request.method.unwrap_or("").to_string(),
                    path: path.split('?').next().unwrap_or("").to_string(),
                })));
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_REQUEST => {
                return Ok(Some(Err(BadRequest::TooLarge)))
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Ok(Some(Err(BadRequest::TooLarge))),
            Err(_) => return Ok(Some(Err(BadRequest::Malformed))),
        }
    }
}

async fn route(stream: &mut TcpStream, head: &Head, health: &Health) -> std::io::Result<()> {
    let head_only = head.method == "HEAD";
    if head.method != "GET" && !head_only {
        return respond(stream, false, 405, "text/plain", "only GET and HEAD\n").await;
    }
    match head.path.as_str() {
        "/metrics" => {
            let body = metrics().render();
            respond(
                stream,
                head_only,
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                &body,
            )
            .await
        }
        "/health/live" => respond(stream, head_only, 200, "text/plain", "live\n").await,
        "/health/ready" => {
            let (ready, body) = health.readiness();
            respond(
                stream,
                head_only,
                if ready { 200 } else { 503 },
                "text/plain",
                &body,
            )
            .await
        }
        _ => respond(stream, head_only, 404, "text/plain", "not found\n").await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    head_only: bool,
    code: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn endpoint(health: Arc<Health>) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, health));
        addr
    }

    async fn ask(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
            .await
            .expect("the endpoint answers and closes")
            .unwrap();
        out
    }

    fn ready_health() -> Arc<Health> {
        let h = Health::new(Duration::from_secs(30));
        h.set_listeners_bound();
        h.set_config_loaded();
        h.record_probe(Ok(()));
        h
    }

    #[test]
    fn each_upstream_address_gets_a_line_and_one_down_is_not_a_failure() {
        let h = ready_health();
        h.record_upstream_addresses(vec![
            (
                false,
                "10.0.0.1:25".into(),
                "down (10.0.0.1:25 skipped for 30s)".into(),
            ),
            (true, "10.0.0.2:25".into(), "up".into()),
        ]);
        let (ready, body) = h.readiness();
        assert!(ready, "{body}");
        assert!(
            body.contains(
                "down upstream address 10.0.0.1:25: down (10.0.0.1:25 skipped for 30s)\n"
            ) && body.contains("up   upstream address 10.0.0.2:25: up\n"),
            "{body}"
        );
    }

    #[test]
    fn readiness_needs_every_check_and_a_successful_probe() {
        let h = Health::new(Duration::from_secs(30));
        let (ready, body) = h.readiness();
        assert!(!ready);
        assert!(
            body.contains("FAIL listeners bound") && body.contains("FAIL upstream: not probed yet"),
            "{body}"
        );
        let h = ready_health();
        assert!(h.readiness().0, "{}", h.readiness().1);
        h.record_probe(Err("connection refused".into()));
        let (ready, body) = h.readiness();
        assert!(!ready);
        assert!(body.contains("FAIL upstream: connection refused"), "{body}");
        let h = ready_health();
        h.set_draining();
        assert!(!h.readiness().0);
    }

    #[tokio::test]
    async fn routes_methods_and_malformed_requests() {
        let addr = endpoint(ready_health()).await;
        let live = ask(addr, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            live.starts_with("HTTP/1.1 200 OK\r\n") && live.ends_with("\r\n\r\nlive\n"),
            "{live}"
        );
        let ready = ask(addr, b"GET /health/ready?verbose HTTP/1.1\r\n\r\n").await;
        assert!(ready.starts_with("HTTP/1.1 200 "), "{ready}");
        // Bare LF line ends are taken too.
        let lf = ask(addr, b"GET /health/live HTTP/1.0\n\n").await;
        assert!(lf.starts_with("HTTP/1.1 200 "), "{lf}");
        let head = ask(addr, b"HEAD /health/live HTTP/1.1\r\n\r\n").await;
        assert!(
            head.starts_with("HTTP/1.1 200 ") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        assert!(head.contains("Content-Length: 5\r\n"), "{head}");
        let post = ask(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        let garbage = ask(addr, b"\x16\x03\x01 not http at all\r\n\r\n").await;
        assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
        let missing = ask(addr, b"GET /admin HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
        let mut huge = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_REQUEST + 10));
        let big = ask(addr, &huge).await;
        assert!(big.starts_with("HTTP/1.1 431 "), "{big}");
        let metrics = ask(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            metrics.contains("application/openmetrics-text") && metrics.contains("# EOF"),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn a_silent_client_is_dropped_after_the_request_timeout() {
        let addr = endpoint(ready_health()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut out = Vec::new();
        let n = tokio::time::timeout(REQUEST_TIMEOUT * 5, s.read_to_end(&mut out))
            .await
            .expect("closed by the endpoint, not by the test's own bound")
            .unwrap();
        assert_eq!(n, 0, "closed without an answer");
    }
}
