//! `crash_soak`: rounds of random SIGKILLs against `mailferry copy` Dovecot → Dovecot, each
//! round then run to completion and checked by an independent read-back of both servers'
//! Maildirs (see `stores.rs`). Prints one line per round and the totals: rounds, kills,
//! mid-append kills, lost, duplicated, wall time. Exit code 1 if anything was lost or
//! duplicated or a final run failed. Run it with `bash scripts/crash-soak.sh`.
//!
//! Design decisions, and why:
//! - **Variants in turn**, one per round: `default` (default sessions), `connections-1`,
//!   `load` (busy threads on every core for the whole round: a busy machine delays the
//!   server's commits, which is how the duplicates first appeared) and `slow` (a
//!   thread freezes the target's `imap` processes at random, SIGSTOP for 20–400 ms, one time
//!   in four for 1.5–4 s — longer than the resolution's settle pause — so the killed runs'
//!   appends commit late, during or after the next run's resolution).
//! - **Half the kills land while an append is in flight**: the run logs `MULTIAPPEND sent`
//!   and `MULTIAPPEND answered` at debug level, and the kill comes 0–30 ms after a batch was
//!   sent and not yet answered; the other half at a uniformly random moment between 50 ms and
//!   the time a whole uninterrupted copy takes (measured once at the start, on a scratch
//!   target): start-up, resolution, listing, appends. A kill counts as mid-append when, at that
//!   moment, more batches had been sent than answered. The next run starts at once.
//! - **The final run starts once the dead runs' sessions are gone** (no `imap` process left
//!   on the target, frozen ones let go first): a user re-runs later; a late commit still
//!   landing during the final run is that run's to handle, one after it would be the next
//!   run's (tests/late_commit.rs covers that case).
//! - Seeded (printed; `--seed` replays the kill moments, not the machine's timing).

mod stores;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use mailferry_core::FolderPath;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::process::{is_alive, send_signal};
use mailferry_testkit::{Dovecot, DovecotOptions};

use crate::stores::{Holdings, difference, holdings};

const SOURCE_PASSWORD: &str = "soak-source-pw";
const TARGET_PASSWORD: &str = "soak-target-pw";
/// A single run or wait longer than this is a hang: reported, and the soak fails.
const HANG: Duration = Duration::from_secs(600);

/// Crash soak: random SIGKILLs against mailferry copy Dovecot → Dovecot.
#[derive(Debug, Parser)]
#[command(name = "crash_soak")]
struct Args {
    /// Rounds (each on a fresh target and state).
    #[arg(long, default_value_t = 50)]
    rounds: u32,
    /// Kills per round (fewer when a run finishes first).
    #[arg(long, default_value_t = 4)]
    kills: u32,
    /// Messages in the source (spread over three folders).
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Size mix: heavy (attachments, 1.4% of 5–15 MB), typical or small.
    #[arg(long, default_value = "heavy")]
    sizes: String,
    /// Variants, in turn: default, connections-1, load, slow.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "default,connections-1,load,slow"
    )]
    variants: Vec<String>,
    /// Seed of the kill moments (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The mailferry binary.
    #[arg(long)]
    mailferry: PathBuf,
}

/// SplitMix64: reproducible kill moments from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

fn server(delimiter: char, password: &str) -> Result<Dovecot> {
    Dovecot::start(DovecotOptions {
        delimiter,
        users: vec![("alice".into(), password.into())],
        extra_config: String::new(),
    })
    .context("start Dovecot (run scripts/install-test-deps.sh)")
}

fn url(d: &Dovecot) -> String {
    format!("imap://alice@{}:{}", d.host(), d.imap_port())
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Batches sent and not yet answered, as the run's debug log says.
fn in_flight(log: &Path) -> bool {
    let text = log_text(log);
    text.matches("MULTIAPPEND sent").count() > text.matches("MULTIAPPEND answered").count()
}

/// `text` without ANSI colour sequences (`ESC [ ... letter`).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Surplus copies a run removed, from its `removed surplus copies` warnings (`removed=N`).
fn removed_in_log(text: &str) -> u64 {
    plain(text)
        .lines()
        .filter(|l| l.contains("removed surplus copies"))
        .filter_map(|l| {
            let at = l.find("removed=")? + "removed=".len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + HANG;
    while !done() {
        if Instant::now() > deadline {
            bail!("waited {HANG:?} for {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// One round's endpoints and files.
struct Round<'a> {
    args: &'a Args,
    /// How long an uninterrupted copy takes: the range of blind kill moments.
    full_copy: Duration,
    source: &'a Dovecot,
    target: &'a Dovecot,
    dir: &'a Path,
    ca: PathBuf,
    connections_1: bool,
}

impl Round<'_> {
    fn spawn(&self, log: &Path, extra: &[&str]) -> Result<Child> {
        let out = std::fs::File::create(log)?;
        let mut cmd = Command::new(&self.args.mailferry);
        cmd.arg("copy")
            .arg(url(self.source))
            .arg(url(self.target))
            .arg("--ca-file")
            .arg(&self.ca)
            .arg("--state")
            .arg(self.dir.join("state.sqlite"))
            .args(extra)
            .env("MAILFERRY_SOURCE_PASSWORD", SOURCE_PASSWORD)
            .env("MAILFERRY_TARGET_PASSWORD", TARGET_PASSWORD)
            .env("XDG_DATA_HOME", self.dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        if self.connections_1 {
            cmd.args(["--connections", "1"]);
        }
        cmd.spawn()
            .with_context(|| format!("spawn {}", self.args.mailferry.display()))
    }
}

/// What a round saw.
#[derive(Default)]
struct Tally {
    kills: u64,
    mid_append: u64,
    lost: u64,
    duplicated: u64,
    /// Late copies removed, by any run of the round (killed ones from their logs).
    surplus_removed: u64,
    failed: u64,
}

/// Freezes random target `imap` processes (20–400 ms, or 1.5–4 s) until `stop`; lets every
/// one go at the end.
fn stall_randomly(target: &Dovecot, stop: &AtomicBool, seed: u64) {
    let mut rng = Rng(seed);
    while !stop.load(Ordering::SeqCst) {
        let pids = target.imap_pids();
        if let Some(pid) = pids.get(rng.below(pids.len() as u64) as usize) {
            send_signal(*pid, "STOP");
            // One freeze in four outlasts the resolution's settle pause (1 s), so a killed
            // run's append commits after the next run declared it absent.
            let freeze = match rng.below(4) {
                0 => 1_500 + rng.below(2_500),
                _ => 20 + rng.below(380),
            };
            std::thread::sleep(Duration::from_millis(freeze));
            send_signal(*pid, "CONT");
        }
        std::thread::sleep(Duration::from_millis(10 + rng.below(200)));
    }
    for pid in target.imap_pids() {
        send_signal(pid, "CONT");
    }
}

/// Keeps every core busy until `stop`.
fn burn(stop: &AtomicBool) {
    let mut x = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
}

fn kill_and_resume(round: &Round<'_>, rng: &mut Rng, tally: &mut Tally) -> Result<()> {
    for attempt in 1..=round.args.kills {
        let log = round.dir.join(format!("run-{attempt}.log"));
        let mut child = round.spawn(&log, &["-vv"])?;
        let started = Instant::now();
        let in_flight_kill = rng.below(2) == 0;
        let span = round.full_copy.as_millis().max(100) as u64;
        let delay = Duration::from_millis(50 + rng.below(span));
        let jitter = Duration::from_millis(rng.below(30));
        let exited = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            let due = if in_flight_kill {
                // An append in flight, or nothing sent within a generous bound.
                in_flight(&log) || started.elapsed() > Duration::from_secs(10)
            } else {
                started.elapsed() >= delay
            };
            if due {
                if in_flight_kill {
                    std::thread::sleep(jitter);
                }
                break None;
            }
            if started.elapsed() > HANG {
                bail!("run {attempt} hung:\n{}", log_text(&log));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if let Some(status) = exited {
            tally.surplus_removed += removed_in_log(&log_text(&log));
            if !status.success() {
                bail!("run {attempt} failed ({status}):\n{}", log_text(&log));
            }
            break;
        }
        let mid = in_flight(&log);
        child.kill()?;
        child.wait()?;
        tally.kills += 1;
        tally.mid_append += u64::from(mid);
        tally.surplus_removed += removed_in_log(&log_text(&log));
    }
    Ok(())
}

fn run_round(round: &Round<'_>, want: &Holdings, rng: &mut Rng, variant: &str) -> Result<Tally> {
    let mut tally = Tally::default();
    let stop = AtomicBool::new(false);
    let stall_seed = rng.next();
    std::thread::scope(|scope| -> Result<()> {
        let mut helpers = Vec::new();
        if variant == "load" {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            for _ in 0..cores {
                helpers.push(scope.spawn(|| burn(&stop)));
            }
        }
        if variant == "slow" {
            helpers.push(scope.spawn(|| stall_randomly(round.target, &stop, stall_seed)));
        }
        let killed = kill_and_resume(round, rng, &mut tally);
        stop.store(true, Ordering::SeqCst);
        for h in helpers {
            let _ = h.join();
        }
        killed
    })?;
    for pid in round.target.imap_pids() {
        send_signal(pid, "CONT");
    }
    // The dead runs' sessions finish (and commit what they hold) before the final run.
    wait_until("the killed runs' server sessions to end", || {
        round.target.imap_pids().iter().all(|p| !is_alive(*p))
    })?;
    let log = round.dir.join("final.log");
    let report = round.dir.join("final.json");
    let report_arg = report.display().to_string();
    let mut child = round.spawn(&log, &["-v", "--report", &report_arg])?;
    let mut status = None;
    wait_until("the final run", || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    })?;
    if !status.is_some_and(|s| s.success()) {
        tally.failed += 1;
        eprintln!("final run failed ({status:?}):\n{}", log_text(&log));
    }
    if let Ok(json) = std::fs::read(&report)
        && let Ok(json) = serde_json::from_slice::<serde_json::Value>(&json)
        && let Some(folders) = json["copy"]["folders"].as_array()
    {
        tally.surplus_removed += folders
            .iter()
            .filter_map(|f| f["surplus_removed"].as_u64())
            .sum::<u64>();
    }
    wait_until("the final run's server sessions to end", || {
        round.target.imap_pids().is_empty()
    })?;
    let got = holdings(&round.target.maildir("alice"), '.')?;
    (tally.lost, tally.duplicated) = difference(want, &got);
    Ok(tally)
}

fn new_round<'a>(
    args: &'a Args,
    source: &'a Dovecot,
    target: &'a Dovecot,
    dir: &'a Path,
    full_copy: Duration,
    connections_1: bool,
) -> Result<Round<'a>> {
    let mut pem = std::fs::read_to_string(source.ca_pem_path())?;
    pem.push_str(&std::fs::read_to_string(target.ca_pem_path())?);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem)?;
    Ok(Round {
        args,
        full_copy,
        source,
        target,
        dir,
        ca,
        connections_1,
    })
}

fn sizes(name: &str) -> Result<SizeMix> {
    Ok(match name {
        "heavy" => SizeMix::heavy(),
        "typical" => SizeMix::typical(),
        "small" => SizeMix::small(),
        other => bail!("--sizes {other}: heavy, typical or small"),
    })
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    for v in &args.variants {
        if !["default", "connections-1", "load", "slow"].contains(&v.as_str()) {
            bail!("--variants: unknown variant {v:?} (default, connections-1, load, slow)");
        }
    }
    if !args.mailferry.is_file() {
        bail!("--mailferry {}: no such file", args.mailferry.display());
    }
    let started = Instant::now();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut rng = Rng(seed);
    println!(
        "crash soak: {} rounds x {} kills, {} {} messages, variants {}, seed {seed}",
        args.rounds,
        args.kills,
        args.messages,
        args.sizes,
        args.variants.join(",")
    );
    let source = server('/', SOURCE_PASSWORD)?;
    let folders = vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2024"]),
        FolderPath::new(["Sent"]),
    ];
    source.fill(
        "alice",
        CorpusSpec::new(args.messages, sizes(&args.sizes)?)
            .with_quirks()
            .in_folders(folders)
            .generate(),
    )?;
    let want = holdings(&source.maildir("alice"), '/')?;
    let total: usize = want.values().map(Vec::len).sum();
    if total != args.messages {
        bail!(
            "the source holds {total} messages, {} were filled",
            args.messages
        );
    }
    let full_copy = {
        let target = server('.', TARGET_PASSWORD)?;
        let dir = tempfile::tempdir()?;
        let round = new_round(&args, &source, &target, dir.path(), Duration::ZERO, false)?;
        let log = dir.path().join("calibration.log");
        let started = Instant::now();
        let mut child = round.spawn(&log, &["-q"])?;
        let mut status = None;
        wait_until("the calibration copy", || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        })?;
        if !status.is_some_and(|s| s.success()) {
            bail!(
                "the calibration copy failed ({status:?}):\n{}",
                log_text(&log)
            );
        }
        started.elapsed()
    };
    println!(
        "an uninterrupted copy takes {:.2} s: blind kills come 50 ms to that after a start",
        full_copy.as_secs_f64()
    );
    let mut sum = Tally::default();
    for r in 0..args.rounds {
        let variant = &args.variants[r as usize % args.variants.len()];
        let round_started = Instant::now();
        let target = server('.', TARGET_PASSWORD)?;
        let dir = tempfile::tempdir()?;
        let one = variant == "connections-1";
        let round = new_round(&args, &source, &target, dir.path(), full_copy, one)?;
        let tally = run_round(&round, &want, &mut rng, variant)?;
        println!(
            "round {:>3} {variant:<13} kills {} mid-append {} lost {} duplicated {} \
             surplus-removed {} final-failed {} ({:.1} s)",
            r + 1,
            tally.kills,
            tally.mid_append,
            tally.lost,
            tally.duplicated,
            tally.surplus_removed,
            tally.failed,
            round_started.elapsed().as_secs_f64()
        );
        sum.kills += tally.kills;
        sum.mid_append += tally.mid_append;
        sum.lost += tally.lost;
        sum.duplicated += tally.duplicated;
        sum.surplus_removed += tally.surplus_removed;
        sum.failed += tally.failed;
    }
    println!(
        "TOTAL rounds {} kills {} mid-append-kills {} lost {} duplicated {} surplus-removed {} \
         failed-final-runs {} wall {:.1} s (seed {seed})",
        args.rounds,
        sum.kills,
        sum.mid_append,
        sum.lost,
        sum.duplicated,
        sum.surplus_removed,
        sum.failed,
        started.elapsed().as_secs_f64()
    );
    Ok(if sum.lost + sum.duplicated + sum.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_counts_are_read_from_coloured_and_plain_logs() {
        let coloured = "\u{1b}[33m WARN\u{1b}[0m removed surplus copies that interrupted appends \
                        committed late \u{1b}[3mfolder\u{1b}[0m\u{1b}[2m=\u{1b}[0mINBOX \
                        \u{1b}[3mremoved\u{1b}[0m\u{1b}[2m=\u{1b}[0m22\n";
        let plain = "WARN removed surplus copies folder=Sent removed=3\nother line removed=9\n";
        assert_eq!(removed_in_log(coloured), 22);
        assert_eq!(removed_in_log(plain), 3);
    }
}
