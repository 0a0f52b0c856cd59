//! The recording upstream's side of one connection: the SMTP dialogue, with every deviation
//! the [`Script`] asks for.

use super::{Fault, Received, Script};
use crate::support::client::Io;
use crate::support::WAIT;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::timeout;

async fn read_line(s: &mut Box<dyn Io>, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            return Some(String::from_utf8_lossy(&line).trim_end().to_string());
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One connection to the recording upstream (a TCP connection or an in-memory pipe), from
/// greeting to close.
pub(super) async fn session(
    mut s: Box<dyn Io>,
    script: Script,
    log: Arc<Mutex<Vec<Received>>>,
    done: mpsc::UnboundedSender<()>,
) {
    let mut tls = false;
    let mut client_certificate = None;
    let greeting = script.greeting.unwrap_or("220 upstream.test ESMTP");
    if s.write_all(format!("{greeting}\r\n").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let mut buf = Vec::new();
    let mut current: Option<usize> = None;
    let mut rcpts_on_connection = 0usize;
    // Replies to MAIL and RCPT not written yet (`Script::envelope_replies_wait`).
    let mut held = String::new();
    // The transaction in progress: MAIL accepted, and how many recipients were.
    let mut mail_open = false;
    let mut accepted_rcpts = 0usize;
    // The reply to a message's end, and whether it is the first message this upstream
    // completed (over any connection): that one may get `first_end_reply`, and the stray line.
    let end_reply = |log: &Arc<Mutex<Vec<Received>>>| -> (&'static str, bool) {
        let first = log.lock().unwrap().iter().filter(|t| t.completed).count() == 1;
        let default = script.end_reply.unwrap_or("250 2.0.0 queued as UPSTREAM1");
        match script.first_end_reply {
            Some(r) if first => (r, first),
            _ => (default, first),
        }
    };
    while let Some(line) = read_line(&mut s, &mut buf).await {
        let upper = line.to_ascii_uppercase();
        // Set when this command ended the upstream's first message (for the stray line).
        let mut ended_first_message = false;
        let reply: String = if upper.starts_with("EHLO") {
            let starttls = if script.starttls.is_some() && !tls {
                "250-STARTTLS\r\n"
            } else {
                ""
            };
            let chunking = match (script.chunking, script.binarymime) {
                (true, true) => "250-CHUNKING\r\n250-BINARYMIME\r\n",
                (true, false) => "250-CHUNKING\r\n",
                (false, _) => "",
            };
            let pipelining = if script.no_pipelining {
                ""
            } else {
                "250-PIPELINING\r\n"
            };
            let dsn = if script.offer_dsn { "250-DSN\r\n" } else { "" };
            let trailer = script
                .ehlo_trailer
                .map(|t| format!("\r\n{t}"))
                .unwrap_or_default();
            format!("250-upstream.test\r\n{pipelining}{starttls}{chunking}{dsn}250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 SIZE 100000000{trailer}")
        } else if upper == "STARTTLS" && script.starttls.is_some() && !tls {
            if s.write_all(b"220 2.0.0 ready\r\n").await.is_err() {
                return;
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(script.starttls.clone().unwrap());
            match acceptor.accept(s).await {
                Ok(t) => {
                    client_certificate = t
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first().cloned());
                    s = Box::new(t)
                }
                Err(_) => return,
            }
            tls = true;
            buf.clear();
            continue;
        } else if upper.starts_with("HELO") {
            "250 upstream.test".into()
        } else if upper.starts_with("MAIL") {
            let mut l = log.lock().unwrap();
            l.push(Received {
                mail: line.clone(),
                tls,
                client_certificate: client_certificate.clone(),
                pipelined: buf.starts_with(b"RCPT"),
                ..Default::default()
            });
            current = Some(l.len() - 1);
            drop(l);
            if script.drop_after_mail {
                return;
            }
            let reply = script.mail_reply.unwrap_or("250 2.1.0 ok");
            mail_open = reply.starts_with('2');
            accepted_rcpts = 0;
            reply.into()
        } else if upper.starts_with("RCPT") {
            if let Some(i) = current {
                let mut l = log.lock().unwrap();
                l[i].rcpts.push(line.clone());
                l[i].data_with_rcpt |= buf.len() >= 6 && buf[..6].eq_ignore_ascii_case(b"DATA\r\n");
            }
            rcpts_on_connection += 1;
            match script.rcpt_fault {
                Some((n, fault)) if n == rcpts_on_connection => {
                    match fault {
                        Fault::Close => {}
                        Fault::ReplyAndClose(r) => {
                            let _ = s.write_all(format!("{r}\r\n").as_bytes()).await;
                        }
                        Fault::Silent => {
                            let mut chunk = [0u8; 8192];
                            while let Ok(n) = s.read(&mut chunk).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                    }
                    return;
                }
                _ => {}
            }
            let reply = match script.refuse_rcpt.iter().find(|(a, _)| line.contains(a)) {
                _ if !mail_open => "503 5.5.1 Error: need MAIL command".into(),
                Some((_, r)) => r.to_string(),
                None => "250 2.1.5 ok".into(),
            };
            accepted_rcpts += usize::from(reply.starts_with('2'));
            match script.rcpt_trailer {
                Some(t) => format!("{reply}\r\n{t}"),
                None => reply,
            }
        } else if upper.starts_with("BDAT ") && script.chunking {
            // BDAT <size> [LAST]: exactly <size> raw bytes follow the command line.
            let mut words = upper.split_whitespace().skip(1);
            let size: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let last = words.next() == Some("LAST");
            while buf.len() < size {
                let mut chunk = [0u8; 65536];
                let n = match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                if n == 0 {
                    if let Some(i) = current {
                        log.lock().unwrap()[i].data.extend_from_slice(&buf);
                    }
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let bytes: Vec<u8> = buf.drain(..size).collect();
            let (chunks, received) = match current {
                Some(i) => {
                    let mut l = log.lock().unwrap();
                    l[i].bdat_before_envelope_replies |= !held.is_empty();
                    l[i].data.extend_from_slice(&bytes);
                    l[i].bdat_chunks += 1;
                    (l[i].bdat_chunks, l[i].data.len())
                }
                None => (0, 0),
            };
            if script
                .drop_during_data_after
                .is_some_and(|limit| received >= limit)
            {
                return;
            }
            if !last {
                if !buf.is_empty() {
                    if let Some(i) = current {
                        log.lock().unwrap()[i].bdat_pipelined = true;
                    }
                }
                match script.refuse_chunk {
                    Some((n, r)) if n == chunks => r.to_string(),
                    _ => format!("250 2.0.0 {size} octets received"),
                }
            } else if accepted_rcpts == 0 && !script.text_for_nobody {
                // RFC 3030: no recipient, no message; the chunk was read all the same.
                mail_open = false;
                "554 5.5.1 Error: no valid recipients".into()
            } else {
                if let Some(i) = current {
                    log.lock().unwrap()[i].completed = true;
                }
                let _ = done.send(());
                if script.drop_after_dot {
                    return;
                }
                let (reply, first) = end_reply(&log);
                ended_first_message = first;
                reply.to_string()
            }
        } else if upper == "DATA" {
            if let Some(hold) = &script.hold_data_answer {
                hold.seen.notify_one();
                if timeout(WAIT, hold.go.notified()).await.is_err() {
                    return;
                }
                // Whatever has arrived by now came before the answer.
                let mut chunk = [0u8; 65536];
                if let Ok(Ok(n)) = timeout(Duration::ZERO, s.read(&mut chunk)).await {
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
            if !buf.is_empty() {
                if let Some(i) = current {
                    log.lock().unwrap()[i].text_before_data_answer = true;
                }
            }
            if let Some(r) = script.data_reply {
                r.to_string()
            } else {
                if s.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                // Read to CRLF.CRLF, raw.
                let mut data = std::mem::take(&mut buf);
                let mut scanned: usize = 0;
                let end = loop {
                    if let Some(limit) = script.drop_during_data_after {
                        if data.len() >= limit {
                            if let Some(i) = current {
                                log.lock().unwrap()[i].data = data.clone();
                            }
                            return;
                        }
                    }
                    if data.starts_with(b".\r\n") {
                        break 0;
                    }
                    // Scan only what is new (plus 4 bytes of overlap): linear in the size.
                    let from = scanned.saturating_sub(4);
                    if let Some(p) = data[from..].windows(5).position(|w| w == b"\r\n.\r\n") {
                        break from + p + 2;
                    }
                    scanned = data.len();
                    let mut chunk = [0u8; 65536];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => {
                            if let Some(i) = current {
                                log.lock().unwrap()[i].data = data.clone();
                            }
                            return;
                        }
                        Ok(n) => data.extend_from_slice(&chunk[..n]),
                    }
                };
                buf = data.split_off(end + 3);
                data.truncate(end);
                if let Some(i) = current {
                    let mut l = log.lock().unwrap();
                    l[i].data = data;
                    l[i].completed = true;
                }
                let _ = done.send(());
                if script.drop_after_dot {
                    return;
                }
                if script.silent_after_dot {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let (reply, first) = end_reply(&log);
                if script.hang_up_after_message {
                    let _ = s.write_all(format!("{reply}\r\n").as_bytes()).await;
                    return;
                }
                ended_first_message = first;
                reply.to_string()
            }
        } else if upper == "RSET" {
            current = None;
            mail_open = false;
            accepted_rcpts = 0;
            "250 2.0.0 reset".into()
        } else if upper == "QUIT" {
            let _ = s.write_all(b"221 bye\r\n").await;
            return;
        } else if upper == "NOOP" {
            "250 ok".into()
        } else {
            "502 5.5.1 unknown".into()
        };
        if script.envelope_replies_wait && (upper.starts_with("MAIL") || upper.starts_with("RCPT"))
        {
            held.push_str(&format!("{reply}\r\n"));
            continue;
        }
        let reply = format!("{}{reply}\r\n", std::mem::take(&mut held));
        if s.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
        if let (true, Some(stray)) = (ended_first_message, &script.stray_after_first_message) {
            if timeout(WAIT, stray.go.notified()).await.is_err() {
                return;
            }
            if stray.line.is_empty() {
                let _ = s.shutdown().await;
                stray.written.notify_one();
                return;
            }
            if s.write_all(format!("{}\r\n", stray.line).as_bytes())
                .await
                .is_err()
            {
                return;
            }
            stray.written.notify_one();
        }
    }
}
