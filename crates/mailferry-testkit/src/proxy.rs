//! A TCP proxy for tests that adds round-trip latency and cuts connections, so latency hiding
//! (pipelining, LITERAL+, several sessions) and recovery from a dropped link are measured
//! against a real server instead of being assumed.
//!
//! Design decisions, and why:
//! - **A delay line, not a sleep per read.** Each direction is a reader task that stamps every
//!   chunk with `now + rtt/2` and queues it (unbounded), and a writer task that sleeps until
//!   the stamp and writes. A stream is therefore delayed by `rtt/2` per direction but not
//!   slowed: a proxy that slept before forwarding each read would cap a bulk transfer at one
//!   chunk per `rtt/2`, and a latency test would really be a bandwidth test. The queue holds at
//!   most about bandwidth × delay bytes, which is small on loopback.
//! - **Cuts are exact.** Both directions of a connection share one byte counter; the chunk that
//!   crosses `cut_after_bytes` is truncated to the limit, what is within the limit is still
//!   delivered (after its delay), then both sides are closed. The limit is read when the
//!   connection is accepted, so changing it affects new connections only and a fault test can
//!   pick a new random offset per connection; the round trip is read per chunk, so it changes
//!   live.
//! - **Half-close is forwarded** (EOF from one side shuts down writing to the other); a read or
//!   write error tears the whole connection down, as a real broken link would.
//! - Every task hangs off a `JoinSet` owned by its parent, so dropping the [`Proxy`] (which
//!   aborts the accept task) drops every connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// How the proxy distorts traffic.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Added round-trip time, half per direction.
    pub round_trip: Duration,
    /// Cut each connection once this many bytes (both directions counted) have passed.
    pub cut_after_bytes: Option<u64>,
}

/// `cut_after` value meaning "never".
const NEVER: u64 = u64::MAX;

const CHUNK: usize = 64 * 1024;

struct Shared {
    upstream: SocketAddr,
    round_trip_nanos: AtomicU64,
    cut_after: AtomicU64,
    connections: AtomicU64,
    cuts: AtomicU64,
    /// Bumped by [`Proxy::cut_all`]; every connection watches it.
    cut_all: watch::Sender<u64>,
}

impl Shared {
    fn one_way(&self) -> Duration {
        Duration::from_nanos(self.round_trip_nanos.load(Ordering::Relaxed) / 2)
    }
}

/// A running proxy on `127.0.0.1:<ephemeral>` in front of one upstream address. Dropping it
/// stops it and drops every connection.
///
/// ```no_run
/// use std::time::Duration;
/// use mailferry_testkit::{Proxy, ProxyOptions};
///
/// # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
/// let options = ProxyOptions { round_trip: Duration::from_millis(50), cut_after_bytes: None };
/// let proxy = Proxy::start(server, options).await?;
/// // Point the client at proxy.addr(): every exchange now costs 50 ms more.
/// proxy.set_cut_after_bytes(Some(123_456)); // the next connection dies at that offset
/// assert_eq!(proxy.cuts(), 0);
/// # Ok(())
/// # }
/// ```
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream`. Must be called
    /// within a tokio runtime (the proxy's tasks run on it).
    pub async fn start(upstream: SocketAddr, options: ProxyOptions) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            round_trip_nanos: AtomicU64::new(duration_nanos(options.round_trip)),
            cut_after: AtomicU64::new(options.cut_after_bytes.unwrap_or(NEVER)),
            connections: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            cut_all: watch::Sender::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Proxy {
            addr,
            shared,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the added round-trip time; applies to data read from now on.
    pub fn set_round_trip(&self, rtt: Duration) {
        self.shared
            .round_trip_nanos
            .store(duration_nanos(rtt), Ordering::Relaxed);
    }

    /// Changes the cut offset; applies to connections accepted from now on.
    pub fn set_cut_after_bytes(&self, n: Option<u64>) {
        self.shared
            .cut_after
            .store(n.unwrap_or(NEVER), Ordering::Relaxed);
    }

    /// Drops every open connection now (both sides), without delivering queued data.
    pub fn cut_all(&self) {
        self.shared
            .cut_all
            .send_modify(|generation| *generation += 1);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections the proxy cut so far (by `cut_after_bytes` or [`Proxy::cut_all`]). A cut is
    /// counted before either side can see the close, so a test may assert right after it.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    shared.connections.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(connection(client, shared.clone()));
                }
                // Out of file descriptors and the like: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Both directions of one connection.
async fn connection(client: TcpStream, shared: Arc<Shared>) {
    let limit = shared.cut_after.load(Ordering::Relaxed);
    let mut cut_all = shared.cut_all.subscribe();
    if limit == 0 {
        shared.cuts.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let Ok(upstream) = TcpStream::connect(shared.upstream).await else {
        // The client sees the connection close, as it would if the server refused it.
        return;
    };
    // Latency tests measure the added delay, not Nagle's.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let line = DelayLine {
        shared: shared.clone(),
        limit,
        passed: Arc::new(AtomicU64::new(0)),
        limit_reached: watch::Sender::new(false),
    };
    let mut tasks = JoinSet::new();
    for (read, write) in [(client_read, upstream_write), (upstream_read, client_write)] {
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.spawn(line.clone().pump_in(read, tx));
        tasks.spawn(pump_out(write, rx));
    }
    let cut_by_all = loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break false,
                Some(Ok(Ok(()))) => {}
                // An error or panic in one direction tears the connection down.
                Some(_) => break false,
            },
            Ok(()) = cut_all.changed() => break true,
        }
    };
    if cut_by_all {
        // Counted before the sockets close, so a peer that sees the close sees the count.
        shared.cuts.fetch_add(1, Ordering::SeqCst);
    }
    // Dropping `tasks` aborts what is left and closes both sockets.
}

/// The state one connection's two readers share.
#[derive(Clone)]
struct DelayLine {
    shared: Arc<Shared>,
    limit: u64,
    passed: Arc<AtomicU64>,
    limit_reached: watch::Sender<bool>,
}

/// Outcome of a pump task: `Err` tears the connection down.
type Pump = Result<(), ()>;

impl DelayLine {
    /// Reads chunks, counts them against the limit and queues them with their due time.
    async fn pump_in(
        self,
        mut read: OwnedReadHalf,
        queue: mpsc::UnboundedSender<(Instant, Bytes)>,
    ) -> Pump {
        let mut stop = self.limit_reached.subscribe();
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.reserve(CHUNK);
            let n = tokio::select! {
                read = read.read_buf(&mut buf) => match read {
                    // EOF: dropping `queue` lets the writer finish and half-close.
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(_) => return Err(()),
                },
                _ = stop.wait_for(|reached| *reached) => return Ok(()),
            };
            let mut chunk = buf.split().freeze();
            let mut reached = false;
            if self.limit != NEVER {
                let before = self.passed.fetch_add(n as u64, Ordering::SeqCst);
                let allowed = self.limit.saturating_sub(before).min(n as u64);
                if before + n as u64 >= self.limit {
                    chunk.truncate(allowed as usize);
                    reached = true;
                }
            }
            if reached && !self.limit_reached.send_replace(true) {
                // Counted before the last chunk is queued, hence before either side can see
                // the close; only the first reader to reach the limit counts.
                self.shared.cuts.fetch_add(1, Ordering::SeqCst);
            }
            let due = Instant::now() + self.shared.one_way();
            if !chunk.is_empty() && queue.send((due, chunk)).is_err() {
                return Err(());
            }
            if reached {
                return Ok(());
            }
        }
    }
}

/// Writes queued chunks when they are due; half-closes when the reader is done.
async fn pump_out(
    mut write: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<(Instant, Bytes)>,
) -> Pump {
    while let Some((due, chunk)) = queue.recv().await {
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        if write.write_all(&chunk).await.is_err() {
            return Err(());
        }
    }
    let _ = write.shutdown().await;
    Ok(())
}
