//! A WAN in a box: a TCP proxy that delays each direction by half a round-trip time, for the
//! bench scripts (this machine's kernel has no netem).
//!
//!   cargo run --release --example delayproxy -- --listen 127.0.0.1:26401 \
//!       --upstream 127.0.0.1:26400 --rtt-ms 50 [--drop-one-in 1000] [--seed 1]
//!
//! Every chunk read is stamped with the time it arrived and written at that time plus rtt/2,
//! so a request and its reply cost one RTT, as on a real path. Each direction holds at most
//! `CHUNKS` chunks of `CHUNK` bytes in flight: a full queue stops reading, so a fast sender
//! meets TCP backpressure instead of growing this process (a window of 1 MiB per direction).
//! `--drop-one-in N` resets about one connection in N (chosen by a seeded generator, so a
//! soak can be replayed) after a random number of client bytes, as a WAN fault would.
//! Prints one `delayproxy ready ...` line when it listens. Loopback addresses only.

use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes per read; with `CHUNKS`, the most one direction holds in flight.
const CHUNK: usize = 16 * 1024;
const CHUNKS: usize = 64;
/// A connection chosen for a reset is cut after a random count of client bytes below this.
const RESET_WITHIN_BYTES: u64 = 8 * 1024;

#[derive(Parser, Debug)]
#[command(about = "TCP proxy delaying each direction by rtt/2 (bench tool, loopback only)")]
struct Args {
    #[arg(long)]
    listen: SocketAddr,
    #[arg(long)]
    upstream: SocketAddr,
    /// Round-trip time added between the two sides, in milliseconds.
    #[arg(long = "rtt-ms", default_value_t = 0)]
    rtt_ms: u64,
    /// Reset about one connection in N (0: never).
    #[arg(long = "drop-one-in", default_value_t = 0)]
    drop_one_in: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// splitmix64: a seeded, dependency-free generator; the same seed and connection number give
/// the same choice on every run.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// For connection number `n`: after how many client bytes to reset it, or None to leave it be.
fn reset_point(seed: u64, n: u64, one_in: u64) -> Option<u64> {
    if one_in == 0 {
        return None;
    }
    let r = mix(seed ^ mix(n));
    (r % one_in == 0).then(|| 1 + (r >> 20) % RESET_WITHIN_BYTES)
}

/// Why a pump stopped early: the planned reset, or an I/O error (either ends the connection).
#[derive(Debug)]
enum Stop {
    Reset,
    Io,
}

/// Reads chunks from `rd`, stamps them with their delivery time and queues them; with a reset
/// point, stops with `Stop::Reset` once that many bytes have passed.
async fn read_side(
    mut rd: tokio::net::tcp::ReadHalf<'_>,
    tx: mpsc::Sender<(Instant, Vec<u8>)>,
    delay: Duration,
    reset_after: Option<u64>,
) -> Result<(), Stop> {
    let mut seen = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = rd.read(&mut buf).await.map_err(|_| Stop::Io)?;
        if n == 0 {
            return Ok(()); // dropping tx lets the writer drain, then half-close
        }
        buf.truncate(n);
        seen += n as u64;
        if reset_after.is_some_and(|at| seen >= at) {
            return Err(Stop::Reset);
        }
        // A full queue waits here: backpressure to the sender, never unbounded memory.
        tx.send((Instant::now() + delay, buf))
            .await
            .map_err(|_| Stop::Io)?;
    }
}

/// Writes each queued chunk at its delivery time; on the reader's end, half-closes.
async fn write_side(
    mut wr: tokio::net::tcp::WriteHalf<'_>,
    mut rx: mpsc::Receiver<(Instant, Vec<u8>)>,
) -> Result<(), Stop> {
    while let Some((at, buf)) = rx.recv().await {
        tokio::time::sleep_until(at).await;
        wr.write_all(&buf).await.map_err(|_| Stop::Io)?;
    }
    let _ = wr.shutdown().await;
    Ok(())
}

async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    delay: Duration,
    n: u64,
    reset: Option<u64>,
) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return; // the client sees the connection close, as with an unreachable upstream
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let outcome = {
        let (crd, cwr) = client.split();
        let (srd, swr) = server.split();
        let (to_server, from_client) = mpsc::channel(CHUNKS);
        let (to_client, from_server) = mpsc::channel(CHUNKS);
        tokio::try_join!(
            read_side(crd, to_server, delay, reset),
            write_side(swr, from_client),
            read_side(srd, to_client, delay, None),
            write_side(cwr, from_server),
        )
    };
    if let Err(Stop::Reset) = outcome {
        // One line per reset made (scripts count them), not per connection chosen: a chosen
        // connection that ends before its reset point is left alone.
        eprintln!("delayproxy: reset connection {n}");
        // Linger 0: close sends RST to both sides, as a dropped WAN path looks to the peers.
        #[allow(deprecated)]
        for s in [&client, &server] {
            let _ = s.set_linger(Some(Duration::ZERO));
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() || !args.upstream.ip().is_loopback() {
        eprintln!("delayproxy: loopback addresses only");
        std::process::exit(2);
    }
    let listener = match relaygate::server::listen(args.listen, 4096) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("delayproxy: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    println!(
        "delayproxy ready on {} -> {} rtt {} ms drop-one-in {}",
        args.listen, args.upstream, args.rtt_ms, args.drop_one_in
    );
    let delay = Duration::from_micros(args.rtt_ms * 500);
    let mut n = 0u64;
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors or similar: wait a moment rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        n += 1;
        let reset = reset_point(args.seed, n, args.drop_one_in);
        tokio::spawn(relay(client, args.upstream, delay, n, reset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_one_in_resets_about_one_connection_in_n_and_replays_with_the_same_seed() {
        let chosen: Vec<u64> = (0..100_000)
            .filter(|&n| reset_point(7, n, 1000).is_some())
            .collect();
        assert!((70..=130).contains(&chosen.len()), "{}", chosen.len());
        let again: Vec<u64> = (0..100_000)
            .filter(|&n| reset_point(7, n, 1000).is_some())
            .collect();
        assert_eq!(chosen, again);
        assert!((0..1000).all(|n| reset_point(7, n, 0).is_none()));
        assert!((0..1000).all(|n| reset_point(7, n, 1).is_some_and(|b| b <= RESET_WITHIN_BYTES)));
    }
}
