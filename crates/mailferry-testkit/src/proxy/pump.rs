//! One connection's pumps: a reader per direction that counts bytes against the connection's
//! fault offsets, scans the IMAP framing and queues chunks with their due time, and a writer per
//! direction that writes them when due (the server-to-client one also obeys the stall
//! switches). See the parent module for the design.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::framing::Framing;
use super::{BYE, CHUNK, Plan, REFUSAL, Shared};

/// Which way a pump moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// Client to server: commands and APPEND literals.
    ToServer,
    /// Server to client: responses and FETCH literals.
    ToClient,
}

/// The state one connection's two readers share.
#[derive(Clone)]
pub(super) struct DelayLine {
    pub shared: Arc<Shared>,
    pub plan: Plan,
    pub passed: Arc<AtomicU64>,
    /// Complete commands the client sent.
    pub commands: Arc<AtomicU64>,
    /// Complete tagged responses the server sent.
    pub replies: Arc<AtomicU64>,
    /// Set when the connection is being closed (cut or BYE): both readers stop.
    pub closing: watch::Sender<bool>,
    /// Set when the BYE offset is passed; the server reader sends BYE at a boundary.
    pub bye_due: watch::Sender<bool>,
    /// The verb of each command sent, by tag, to name what a refusal answered.
    pub verbs: Arc<Mutex<HashMap<Vec<u8>, String>>>,
}

/// The tag and verb (`UID` joined with the next word) of a command's first line.
fn tag_and_verb(head: &[u8]) -> Option<(Vec<u8>, String)> {
    let text = String::from_utf8_lossy(head);
    let mut words = text.split([' ', '\r', '\n']).filter(|w| !w.is_empty());
    let tag = words.next()?.as_bytes().to_vec();
    let mut verb = words.next()?.to_ascii_uppercase();
    if verb == "UID"
        && let Some(next) = words.next()
    {
        verb = format!("UID {}", next.to_ascii_uppercase());
    }
    Some((tag, verb))
}

/// Outcome of a pump task: `Err` tears the connection down.
pub(super) type Pump = Result<(), ()>;

/// A queued chunk and when it is due.
type Queue = mpsc::UnboundedSender<(Instant, Bytes)>;

impl DelayLine {
    /// Reads chunks, counts them against the offsets, scans them and queues them with their
    /// due time.
    pub(super) async fn pump_in(
        self,
        mut read: OwnedReadHalf,
        queue: Queue,
        direction: Direction,
    ) -> Pump {
        let mut stop = self.closing.subscribe();
        let mut bye_due = self.bye_due.subscribe();
        let mut framing = Framing::new(direction == Direction::ToServer);
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.reserve(CHUNK);
            let bye_now = direction == Direction::ToClient && framing.at_start();
            let n = tokio::select! {
                // A due BYE goes before anything the server sends after it.
                biased;
                _ = stop.wait_for(|closing| *closing) => return Ok(()),
                _ = bye_due.wait_for(|due| *due), if bye_now => {
                    return self.say_bye(Vec::new(), &queue);
                }
                read = read.read_buf(&mut buf) => match read {
                    // EOF: dropping `queue` lets the writer finish and half-close.
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(_) => return Err(()),
                },
            };
            let mut chunk = buf.split().freeze();
            let before = self.passed.fetch_add(n as u64, Ordering::SeqCst);
            let after = before + n as u64;
            let cut = after >= self.plan.cut_at;
            if cut {
                chunk.truncate(self.plan.cut_at.saturating_sub(before).min(n as u64) as usize);
            }
            let stop_from = (direction == Direction::ToClient && after >= self.plan.bye_at)
                .then(|| self.plan.bye_at.saturating_sub(before) as usize);
            let hold = direction == Direction::ToClient
                && self.shared.refuse_every.load(Ordering::Relaxed) > 0;
            let mut fed = framing.feed(&chunk, hold, |l| self.refusal(l), stop_from);
            if !fed.heads.is_empty()
                && let Ok(mut verbs) = self.verbs.lock()
            {
                verbs.extend(fed.heads.iter().filter_map(|h| tag_and_verb(h)));
            }
            match direction {
                Direction::ToServer => &self.commands,
                Direction::ToClient => &self.replies,
            }
            .fetch_add(
                match direction {
                    Direction::ToServer => fed.completed.all,
                    Direction::ToClient => fed.completed.tagged,
                },
                Ordering::SeqCst,
            );
            if cut && !fed.stopped {
                fed.out.extend(framing.take_held());
                if !self.closing.send_replace(true) {
                    // Counted before the last chunk is queued, hence before either side can
                    // see the close; only the first reader to reach the limit counts.
                    self.record_cut(&framing, direction);
                }
                return send_all(&queue, fed.out, self.shared.one_way());
            }
            if fed.stopped {
                return self.say_bye(fed.out, &queue);
            }
            if after >= self.plan.bye_at {
                self.bye_due.send_replace(true);
            }
            send_all(&queue, fed.out, self.shared.one_way())?;
        }
    }

    /// The replacement of a complete tagged response line, if it is the one to refuse.
    fn refusal(&self, line: &[u8]) -> Option<Vec<u8>> {
        let shared = &self.shared;
        let every = shared.refuse_every.load(Ordering::Relaxed);
        if every == 0 {
            return None;
        }
        let seen = shared.tagged_seen.fetch_add(1, Ordering::SeqCst) + 1;
        if !seen.is_multiple_of(every) {
            return None;
        }
        let tag = line.split(|&b| b == b' ').next().unwrap_or_default();
        let verb = self
            .verbs
            .lock()
            .ok()
            .and_then(|v| v.get(tag).cloned())
            .unwrap_or_else(|| "?".into());
        if let Ok(mut refused) = shared.refused.lock() {
            *refused.entry(verb).or_default() += 1;
        }
        shared.refusals.fetch_add(1, Ordering::SeqCst);
        Some([tag, REFUSAL].concat())
    }

    /// Queues `out` and the BYE line, and closes the connection.
    fn say_bye(&self, mut out: Vec<Bytes>, queue: &Queue) -> Pump {
        if !self.closing.send_replace(true) {
            self.shared.byes.fetch_add(1, Ordering::SeqCst);
        }
        out.push(Bytes::from_static(BYE));
        send_all(queue, out, self.shared.one_way())
    }

    fn record_cut(&self, framing: &Framing, direction: Direction) {
        self.shared.cuts.fetch_add(1, Ordering::SeqCst);
        let Ok(mut sites) = self.shared.sites.lock() else {
            return;
        };
        let waiting = self.commands.load(Ordering::SeqCst) > self.replies.load(Ordering::SeqCst);
        match (framing.in_literal(), direction) {
            (true, Direction::ToClient) => sites.server_literal += 1,
            (true, Direction::ToServer) => sites.client_literal += 1,
            (false, _) if waiting => sites.awaiting_reply += 1,
            (false, _) => sites.idle += 1,
        }
    }
}

fn send_all(queue: &Queue, out: Vec<Bytes>, delay: Duration) -> Pump {
    let due = Instant::now() + delay;
    for piece in out.into_iter().filter(|p| !p.is_empty()) {
        queue.send((due, piece)).map_err(|_| ())?;
    }
    Ok(())
}

/// The stall switches a server-to-client writer obeys.
pub(super) struct Stall {
    pub global: watch::Receiver<bool>,
    pub here: watch::Receiver<bool>,
}

impl Stall {
    /// Returns once neither switch is on (or the proxy is gone).
    async fn wait_until_released(&mut self) {
        loop {
            if !*self.global.borrow_and_update() && !*self.here.borrow_and_update() {
                return;
            }
            let changed = tokio::select! {
                r = self.global.changed() => r,
                r = self.here.changed() => r,
            };
            if changed.is_err() {
                return;
            }
        }
    }
}

/// Writes queued chunks when they are due (and not stalled); half-closes when the reader is
/// done.
pub(super) async fn pump_out(
    mut write: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<(Instant, Bytes)>,
    mut stall: Option<Stall>,
) -> Pump {
    while let Some((due, chunk)) = queue.recv().await {
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        if let Some(stall) = &mut stall {
            stall.wait_until_released().await;
        }
        if write.write_all(&chunk).await.is_err() {
            return Err(());
        }
    }
    let _ = write.shutdown().await;
    Ok(())
}
