//! The live view of `mailferry plan`: what many mailboxes in flight look like.
//!
//! Design decisions, and why:
//! - **One screen, not a wall of bars.** On a terminal, an indicatif view of a few lines: the
//!   plan's totals (mailboxes done / running / failed / waiting, messages, bytes, rate, ETA)
//!   and the [`TOP`] running mailboxes with the most messages still to copy — the ones the
//!   plan's end waits for. Each mailbox that ends prints one line above the view, so failures
//!   stay on screen after it is gone.
//! - **Quiet lines when stderr is no terminal** (a log file, CI): the per-mailbox line as each
//!   ends, and one totals line every [`LINE_EVERY`].
//! - **`--log-format json`**: one JSON object per line — `mailbox_started`, `mailbox_finished`
//!   and `plan_progress` (periodic totals) — for log shippers.
//! - Fed by [`PlanObserver`] calls and each mailbox's progress stream; drawing happens on its
//!   own tick, so the copy never waits for the display.
//! - **ETA**: messages left over the rate so far; mailboxes still waiting are assumed to be as
//!   large as the average of those started (their size is known only once they are planned).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mailferry::core::{Counts, Progress};
use mailferry::mailbox::{MailboxReport, PlanObserver, PreparedMailbox};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::args::LogFormat;

/// Running mailboxes shown on a terminal.
const TOP: usize = 6;
/// How often a line of totals is written when stderr is no terminal (and JSON totals).
const LINE_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Waiting,
    Running,
    Done,
    Failed,
}

struct Mailbox {
    label: String,
    stage: Stage,
    total: u64,
    counts: Counts,
    started: Option<Instant>,
}

fn accounted(c: &Counts) -> u64 {
    c.copied + c.already_copied + c.skipped_existing + c.filtered + c.failed
}

/// The plan's figures at one moment.
struct Totals {
    done: usize,
    running: usize,
    failed: usize,
    waiting: usize,
    accounted: u64,
    expected: u64,
    copied: u64,
    bytes: u64,
    rate: f64,
    eta: Option<Duration>,
}

struct State {
    mailboxes: Vec<Mailbox>,
    started: Instant,
}

impl State {
    fn totals(&self) -> Totals {
        let count = |s: Stage| self.mailboxes.iter().filter(|m| m.stage == s).count();
        let (mut accounted_n, mut known, mut copied, mut bytes, mut sized) = (0, 0, 0, 0, 0u64);
        for m in &self.mailboxes {
            accounted_n += accounted(&m.counts);
            copied += m.counts.copied;
            bytes += m.counts.bytes;
            if m.stage != Stage::Waiting {
                known += m.total.max(accounted(&m.counts));
                sized += 1;
            }
        }
        let waiting = count(Stage::Waiting);
        let expected = known + (known / sized.max(1)) * waiting as u64;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = accounted_n as f64 / secs;
        let eta = (rate > 0.0 && sized > 0)
            .then(|| Duration::from_secs_f64(expected.saturating_sub(accounted_n) as f64 / rate));
        Totals {
            done: count(Stage::Done),
            running: count(Stage::Running),
            failed: count(Stage::Failed),
            waiting,
            accounted: accounted_n,
            expected,
            copied,
            bytes,
            rate,
            eta,
        }
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn eta_text(eta: Option<Duration>) -> String {
    match eta {
        Some(d) => indicatif::HumanDuration(d).to_string(),
        None => "?".into(),
    }
}

/// How the view is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Terminal,
    Lines,
    Json,
    Quiet,
}

/// The live view; an observer for [`mailferry::mailbox::run_plan_observed`].
pub struct PlanView {
    state: Arc<Mutex<State>>,
    style: Style,
    multi: MultiProgress,
    ticker: Option<JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while drawing must not stop the plan: the figures are still usable.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl PlanView {
    /// A view of `labels.len()` mailboxes (their short names, in the plan's order).
    pub fn start(labels: Vec<String>, quiet: bool, format: LogFormat) -> Self {
        let style = match (quiet, format) {
            (true, _) => Style::Quiet,
            (false, LogFormat::Json) => Style::Json,
            (false, LogFormat::Text) if std::io::stderr().is_terminal() => Style::Terminal,
            (false, LogFormat::Text) => Style::Lines,
        };
        let state = Arc::new(Mutex::new(State {
            mailboxes: labels
                .into_iter()
                .map(|label| Mailbox {
                    label,
                    stage: Stage::Waiting,
                    total: 0,
                    counts: Counts::default(),
                    started: None,
                })
                .collect(),
            started: Instant::now(),
        }));
        let multi = MultiProgress::with_draw_target(if style == Style::Terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let ticker = match style {
            Style::Quiet => None,
            Style::Terminal => Some(tokio::spawn(draw_terminal(
                Arc::clone(&state),
                multi.clone(),
            ))),
            Style::Lines | Style::Json => {
                Some(tokio::spawn(write_lines(Arc::clone(&state), style)))
            }
        };
        PlanView {
            state,
            style,
            multi,
            ticker,
        }
    }

    /// Stops the view; lines and JSON end with the final totals (the summary is the caller's).
    pub fn finish(mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        let _ = self.multi.clear();
        if matches!(self.style, Style::Lines | Style::Json) {
            write_totals(&lock(&self.state).totals(), self.style);
        }
    }
}

impl PlanObserver for PlanView {
    fn started(&self, index: usize, mailbox: &PreparedMailbox) {
        let total = mailbox.plan.total_items();
        let label = {
            let mut state = lock(&self.state);
            let Some(m) = state.mailboxes.get_mut(index) else {
                return;
            };
            m.stage = Stage::Running;
            m.total = total;
            m.started = Some(Instant::now());
            m.label.clone()
        };
        if self.style == Style::Json {
            let r = mailbox.report();
            eprintln!(
                "{}",
                json!({"event": "mailbox_started", "index": index, "mailbox": label,
                       "source": r.source, "target": r.target, "messages": total,
                       "unix_time": mailferry::core::report::unix_now()})
            );
        }
        // Follows the mailbox's progress until its stream closes (the migration is dropped).
        let mut events = mailbox.migration.progress();
        let state = Arc::clone(&self.state);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(Progress::Items { delta, .. }) => {
                        if let Some(m) = lock(&state).mailboxes.get_mut(index)
                            && m.stage == Stage::Running
                        {
                            m.counts.add(&delta);
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    fn finished(&self, index: usize, report: &MailboxReport) {
        let label = {
            let mut state = lock(&self.state);
            let Some(m) = state.mailboxes.get_mut(index) else {
                return;
            };
            m.stage = if report.exit_code == 0 {
                Stage::Done
            } else {
                Stage::Failed
            };
            // The report is exact; the stream may have missed events.
            if let Some(copy) = &report.copy {
                m.counts = copy.totals;
            }
            m.label.clone()
        };
        let c = report.copy.as_ref().map(|c| c.totals).unwrap_or_default();
        let line = match &report.error {
            Some(e) => format!("{} -> {}: FAILED: {e}", report.source, report.target),
            None => format!(
                "{} -> {}: {} ({} copied, {} failed)",
                report.source, report.target, report.outcome, c.copied, c.failed
            ),
        };
        match self.style {
            Style::Quiet => {}
            Style::Terminal => {
                let _ = self.multi.println(line);
            }
            Style::Lines => eprintln!("{line}"),
            Style::Json => eprintln!(
                "{}",
                json!({"event": "mailbox_finished", "index": index, "mailbox": label,
                       "source": report.source, "target": report.target,
                       "outcome": report.outcome, "exit_code": report.exit_code,
                       "copied": c.copied, "failed": c.failed, "bytes": c.bytes,
                       "error": report.error,
                       "duration_secs": report.copy.as_ref().map(|c| c.duration_secs),
                       "unix_time": mailferry::core::report::unix_now()})
            ),
        }
    }
}

/// The terminal screen: a totals bar and the [`TOP`] running mailboxes with most left to do.
async fn draw_terminal(state: Arc<Mutex<State>>, multi: MultiProgress) {
    let header = multi.add(ProgressBar::new(0));
    header.set_style(
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let overall = multi.add(ProgressBar::new(0));
    overall.set_style(
        ProgressStyle::with_template("messages  [{bar:30}] {pos}/{len}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let line_style =
        ProgressStyle::with_template("  {msg}").unwrap_or_else(|_| ProgressStyle::default_bar());
    let lines: Vec<ProgressBar> = (0..TOP)
        .map(|_| {
            let l = multi.add(ProgressBar::new(0));
            l.set_style(line_style.clone());
            l
        })
        .collect();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let (t, top) = {
            let s = lock(&state);
            let mut running: Vec<(String, u64, u64, u64, f64)> = s
                .mailboxes
                .iter()
                .filter(|m| m.stage == Stage::Running)
                .map(|m| {
                    let done = accounted(&m.counts);
                    let secs = m.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
                    let rate = done as f64 / secs.max(1e-3);
                    (
                        m.label.clone(),
                        done,
                        m.total.max(done),
                        m.counts.bytes,
                        rate,
                    )
                })
                .collect();
            running.sort_by_key(|(_, done, total, _, _)| std::cmp::Reverse(total - done));
            running.truncate(TOP);
            (s.totals(), running)
        };
        header.set_message(format!(
            "mailboxes {} done · {} running · {} failed · {} waiting      (below: most left to copy)",
            t.done, t.running, t.failed, t.waiting
        ));
        overall.set_length(t.expected.max(t.accounted));
        overall.set_position(t.accounted);
        overall.set_message(format!(
            "{} copied · {} · {:.0} msg/s · eta {}",
            t.copied,
            mb(t.bytes),
            t.rate,
            eta_text(t.eta)
        ));
        for (i, line) in lines.iter().enumerate() {
            line.set_message(match top.get(i) {
                Some((label, done, total, bytes, rate)) => {
                    let width = 20;
                    let filled = (done * width / (*total).max(1)) as usize;
                    format!(
                        "{label:<24.24} [{}{}] {done}/{total} msgs  {}  {rate:.0} msg/s",
                        "=".repeat(filled),
                        " ".repeat(width as usize - filled),
                        mb(*bytes)
                    )
                }
                None => String::new(),
            });
        }
    }
}

/// Lines (or JSON) of totals every [`LINE_EVERY`].
async fn write_lines(state: Arc<Mutex<State>>, style: Style) {
    let mut tick = tokio::time::interval(LINE_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let t = lock(&state).totals();
        write_totals(&t, style);
    }
}

fn write_totals(t: &Totals, style: Style) {
    if style == Style::Json {
        eprintln!(
            "{}",
            json!({"event": "plan_progress",
                   "mailboxes": {"done": t.done, "running": t.running,
                                 "failed": t.failed, "waiting": t.waiting},
                   "messages_accounted": t.accounted, "messages_expected": t.expected,
                   "copied": t.copied, "bytes": t.bytes, "messages_per_sec": t.rate,
                   "eta_secs": t.eta.map(|d| d.as_secs()),
                   "unix_time": mailferry::core::report::unix_now()})
        );
    } else {
        eprintln!(
            "plan: {} done, {} running, {} failed, {} waiting; {}/{} messages ({} copied), {}, {:.0} msg/s, eta {}",
            t.done,
            t.running,
            t.failed,
            t.waiting,
            t.accounted,
            t.expected,
            t.copied,
            mb(t.bytes),
            t.rate,
            eta_text(t.eta)
        );
    }
}
