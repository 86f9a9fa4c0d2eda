//! A TCP proxy for tests that adds round-trip latency and injects faults — cuts, a server's
//! `* BYE`, `NO [UNAVAILABLE]` answers, a peer that stops answering — so latency hiding
//! (pipelining, LITERAL+, several sessions) and recovery from a broken link or a sick server are
//! measured against a real server instead of being assumed.
//!
//! Design decisions, and why:
//! - **A delay line, not a sleep per read.** Each direction is a reader task that stamps every
//!   chunk with `now + rtt/2` and queues it (unbounded), and a writer task that sleeps until
//!   the stamp and writes. A stream is therefore delayed by `rtt/2` per direction but not
//!   slowed: a proxy that slept before forwarding each read would cap a bulk transfer at one
//!   chunk per `rtt/2`, and a latency test would really be a bandwidth test. The queue holds at
//!   most about bandwidth × delay bytes, which is small on loopback.
//! - **Cuts are exact.** Both directions of a connection share one byte counter; the chunk that
//!   crosses the cut offset is truncated to it, what is within the limit is still delivered
//!   (after its delay), then both sides are closed. The offset is fixed when the connection is
//!   accepted — from [`Proxy::set_cut_after_bytes`], or drawn per connection from a seeded RNG
//!   ([`Proxy::set_random_faults`]) so a fault test hits many different places reproducibly;
//!   the round trip is read per chunk, so it changes live.
//! - **IMAP-aware faults need the bytes.** Both directions are scanned for IMAP framing
//!   (`framing`): lines are scanned, literals skipped. That lets the proxy replace a whole
//!   tagged response by `NO [UNAVAILABLE]`, send `* BYE` between two responses (as a server
//!   shutting down does) rather than inside one, and say where each cut fell (inside a FETCH
//!   body, inside an APPEND literal, while a command waited for its reply). These features only
//!   make sense on plaintext, uncompressed IMAP; on other bytes the scanner is harmlessly wrong.
//! - **A stall keeps the connection open** and stops server-to-client bytes, which is what a
//!   hung server looks like to a client: only a read timeout can notice it.
//! - **Half-close is forwarded** (EOF from one side shuts down writing to the other); a read or
//!   write error tears the whole connection down, as a real broken link would.
//! - Every task hangs off a `JoinSet` owned by its parent, so dropping the [`Proxy`] (which
//!   aborts the accept task) drops every connection.

mod framing;
mod pump;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use pump::{DelayLine, Direction, Stall, pump_out};

/// How the proxy distorts traffic.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Added round-trip time, half per direction.
    pub round_trip: Duration,
    /// Cut each connection once this many bytes (both directions counted) have passed.
    pub cut_after_bytes: Option<u64>,
}

/// Faults drawn per connection from a seeded RNG: each new connection ends after a number of
/// bytes (both directions) drawn uniformly from `min_bytes..=max_bytes`, by a cut or — for one
/// connection in `bye_one_in` — by a `* BYE` at the next response boundary followed by a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomFaults {
    /// Seed of the offsets; print it so a failure can be replayed.
    pub seed: u64,
    /// Smallest offset.
    pub min_bytes: u64,
    /// Largest offset.
    pub max_bytes: u64,
    /// One connection in this many gets a BYE instead of a cut (0: never).
    pub bye_one_in: u64,
}

/// Where the connections cut at a byte offset were, by the IMAP framing at the cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutSites {
    /// Inside a literal the server was sending (a FETCH body or header).
    pub server_literal: u64,
    /// Inside a literal the client was sending (an APPEND body).
    pub client_literal: u64,
    /// Outside literals, with a command sent and its tagged reply not yet complete.
    pub awaiting_reply: u64,
    /// No command outstanding (during the greeting, or between commands).
    pub idle: u64,
}

/// Offset value meaning "never".
const NEVER: u64 = u64::MAX;

const CHUNK: usize = 64 * 1024;

/// What the proxy sends for a refused command.
const REFUSAL: &[u8] = b" NO [UNAVAILABLE] Injected by the mailferry test proxy\r\n";
/// What the proxy sends before closing a connection it says goodbye to.
const BYE: &[u8] = b"* BYE Injected by the mailferry test proxy: shutting down\r\n";

struct Shared {
    upstream: SocketAddr,
    round_trip_nanos: AtomicU64,
    cut_after: AtomicU64,
    bye_after: AtomicU64,
    random: Mutex<Option<(RandomFaults, u64)>>,
    refuse_every: AtomicU64,
    tagged_seen: AtomicU64,
    connections: AtomicU64,
    cuts: AtomicU64,
    byes: AtomicU64,
    refusals: AtomicU64,
    /// Refusals by the verb of the command they answered.
    refused: Mutex<BTreeMap<String, u64>>,
    sites: Mutex<CutSites>,
    /// Bumped by [`Proxy::cut_all`]; every connection watches it.
    cut_all: watch::Sender<u64>,
    /// Bumped by [`Proxy::stall_open_connections`].
    stall_open: watch::Sender<u64>,
    /// [`Proxy::set_stalled`].
    stalled: watch::Sender<bool>,
}

impl Shared {
    fn one_way(&self) -> Duration {
        Duration::from_nanos(self.round_trip_nanos.load(Ordering::Relaxed) / 2)
    }

    /// The cut and BYE offsets of a new connection.
    fn plan(&self) -> Plan {
        let random = self.random.lock().ok().and_then(|mut r| {
            let (faults, state) = r.as_mut()?;
            let span = faults
                .max_bytes
                .saturating_sub(faults.min_bytes)
                .saturating_add(1);
            let at = faults.min_bytes + splitmix(state) % span;
            let bye = faults.bye_one_in > 0 && splitmix(state).is_multiple_of(faults.bye_one_in);
            Some(if bye {
                Plan {
                    cut_at: NEVER,
                    bye_at: at,
                }
            } else {
                Plan {
                    cut_at: at,
                    bye_at: NEVER,
                }
            })
        });
        random.unwrap_or_else(|| Plan {
            cut_at: self.cut_after.load(Ordering::Relaxed),
            bye_at: self.bye_after.load(Ordering::Relaxed),
        })
    }
}

/// SplitMix64 step.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The faults of one connection.
#[derive(Debug, Clone, Copy)]
struct Plan {
    cut_at: u64,
    bye_at: u64,
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
/// proxy.set_refuse_every(Some(20)); // every 20th tagged answer becomes NO [UNAVAILABLE]
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
            bye_after: AtomicU64::new(NEVER),
            random: Mutex::new(None),
            refuse_every: AtomicU64::new(0),
            tagged_seen: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            byes: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
            refused: Mutex::new(BTreeMap::new()),
            sites: Mutex::new(CutSites::default()),
            cut_all: watch::Sender::new(0),
            stall_open: watch::Sender::new(0),
            stalled: watch::Sender::new(false),
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

    /// Connections accepted from now on get `* BYE` once this many bytes (both directions)
    /// have passed — at the next server response boundary — and are then closed.
    pub fn set_bye_after_bytes(&self, n: Option<u64>) {
        self.shared
            .bye_after
            .store(n.unwrap_or(NEVER), Ordering::Relaxed);
    }

    /// Draws the cut (or BYE) offset of every connection accepted from now on from a seeded
    /// RNG; overrides the fixed offsets while set. `None` goes back to the fixed ones.
    pub fn set_random_faults(&self, faults: Option<RandomFaults>) {
        if let Ok(mut random) = self.shared.random.lock() {
            *random = faults.map(|f| (f, f.seed));
        }
    }

    /// Every `n`th tagged server response (counted over all connections, from when this is
    /// set) is replaced by `TAG NO [UNAVAILABLE] …`, as a server whose backend is briefly down
    /// answers. The command may have taken effect: an APPEND answered this way is the
    /// uncertain append a client must resolve. `None` stops it. Applies live.
    pub fn set_refuse_every(&self, n: Option<u64>) {
        self.shared
            .refuse_every
            .store(n.unwrap_or(0), Ordering::Relaxed);
    }

    /// While on, no byte from the server reaches any client (open or new connection); the
    /// connections stay open. Off releases what was held, in order.
    pub fn set_stalled(&self, stalled: bool) {
        self.shared.stalled.send_replace(stalled);
    }

    /// Stops server-to-client bytes on every connection open now, for good (until it closes);
    /// new connections are not affected.
    pub fn stall_open_connections(&self) {
        self.shared
            .stall_open
            .send_modify(|generation| *generation += 1);
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

    /// Connections the proxy cut so far (at a byte offset or by [`Proxy::cut_all`]). A cut is
    /// counted before either side can see the close, so a test may assert right after it.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Where the cuts at a byte offset fell (cuts by [`Proxy::cut_all`] are not classified).
    pub fn cut_sites(&self) -> CutSites {
        self.shared.sites.lock().map(|s| *s).unwrap_or_default()
    }

    /// Connections closed with an injected `* BYE` so far (counted before the BYE is sent).
    pub fn byes(&self) -> u64 {
        self.shared.byes.load(Ordering::SeqCst)
    }

    /// Tagged responses replaced by `NO [UNAVAILABLE]` so far.
    pub fn refusals(&self) -> u64 {
        self.shared.refusals.load(Ordering::SeqCst)
    }

    /// The refusals by the command they answered (`APPEND`, `UID FETCH`, `LOGIN`, …; `?` when
    /// the command was not seen whole).
    pub fn refusals_by_command(&self) -> BTreeMap<String, u64> {
        self.shared
            .refused
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
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
    let plan = shared.plan();
    let mut cut_all = shared.cut_all.subscribe();
    let mut stall_open = shared.stall_open.subscribe();
    if plan.cut_at == 0 {
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
        plan,
        passed: Arc::new(AtomicU64::new(0)),
        commands: Arc::new(AtomicU64::new(0)),
        replies: Arc::new(AtomicU64::new(0)),
        closing: watch::Sender::new(false),
        bye_due: watch::Sender::new(false),
        verbs: Arc::new(Mutex::new(HashMap::new())),
    };
    let stalled_here = watch::Sender::new(false);
    let mut tasks = JoinSet::new();
    let (tx, rx) = mpsc::unbounded_channel();
    tasks.spawn(line.clone().pump_in(client_read, tx, Direction::ToServer));
    tasks.spawn(pump_out(upstream_write, rx, None));
    let (tx, rx) = mpsc::unbounded_channel();
    tasks.spawn(line.clone().pump_in(upstream_read, tx, Direction::ToClient));
    let stall = Stall {
        global: shared.stalled.subscribe(),
        here: stalled_here.subscribe(),
    };
    tasks.spawn(pump_out(client_write, rx, Some(stall)));
    let cut_by_all = loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break false,
                Some(Ok(Ok(()))) => {}
                // An error or panic in one direction tears the connection down.
                Some(_) => break false,
            },
            Ok(()) = cut_all.changed() => break true,
            Ok(()) = stall_open.changed() => {
                stalled_here.send_replace(true);
            }
        }
    };
    if cut_by_all {
        // Counted before the sockets close, so a peer that sees the close sees the count.
        shared.cuts.fetch_add(1, Ordering::SeqCst);
    }
    // Dropping `tasks` aborts what is left and closes both sockets.
}
