//! Running one tool and measuring it: wall time from our own clock, CPU seconds and peak RSS
//! from `/usr/bin/time` (Debian's `time` package).
//!
//! Why `/usr/bin/time` and not `getrusage(RUSAGE_CHILDREN)`: the workspace denies
//! `unsafe_code` and std has no rusage API, and `/usr/bin/time` reports exactly what we want —
//! user + system seconds and the largest resident set of the tool's whole process tree (wait4
//! folds every waited-for descendant into the child's usage). It measures the tool only: the
//! Dovecot servers and the latency proxy are not its children. Without `/usr/bin/time` the
//! run still happens and CPU/RSS are reported as unknown, never as zero.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mailferry_benches::figures::RunFigures;
use mailferry_benches::text::one_line;

/// The `/usr/bin/time` format we parse: elapsed, user, system, max RSS in KiB.
const TIME_FORMAT: &str = "MFTIME %e %U %S %M";

/// One measured process run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    /// Wall time, by our clock.
    pub wall: Duration,
    /// User + system CPU seconds of the tool's process tree, if `/usr/bin/time` was there.
    pub cpu_secs: Option<f64>,
    /// Peak resident set in bytes, if `/usr/bin/time` was there.
    pub peak_rss_bytes: Option<u64>,
    /// Exit code (None: killed by a signal).
    pub exit_code: Option<i32>,
    /// Where stdout and stderr went.
    pub log: PathBuf,
}

impl Measured {
    /// Whether the tool exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// The last lines of the tool's output, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A note that this run (`what`: "first run", "re-run") failed, with the last lines of
    /// its output; `None` when it succeeded.
    pub fn failure_note(&self, what: &str) -> Option<String> {
        (!self.succeeded()).then(|| format!("{what} failed: {}", one_line(&self.log_tail(3))))
    }

    /// The figures of a copy of `messages` messages and `bytes` bytes whose first run this was
    /// and whose no-change re-run is `rerun` (`None`: not re-run, which counts as a clean
    /// exit). Not judged yet (not correct, no verdict, no notes): the caller fills that in.
    pub fn figures(&self, messages: u64, bytes: u64, rerun: Option<&Measured>) -> RunFigures {
        RunFigures {
            messages,
            bytes,
            wall_secs: self.wall.as_secs_f64(),
            cpu_secs: self.cpu_secs,
            peak_rss_bytes: self.peak_rss_bytes,
            exit_code: self.exit_code,
            correct: false,
            verdict: String::new(),
            rerun_secs: rerun.map(|r| r.wall.as_secs_f64()),
            rerun_exit_code: rerun.map_or(Some(0), |r| r.exit_code),
            notes: Vec::new(),
        }
    }
}

/// `/usr/bin/time`, if installed.
pub fn time_binary() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/time");
    p.is_file().then_some(p)
}

/// Parses the line `MFTIME <elapsed> <user> <sys> <maxrss KiB>` out of `/usr/bin/time`'s
/// output file (which may also hold "Command exited with non-zero status" lines).
pub fn parse_time_output(text: &str) -> Option<(f64, u64)> {
    let line = text.lines().rev().find(|l| l.starts_with("MFTIME "))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let user: f64 = fields.get(2)?.parse().ok()?;
    let sys: f64 = fields.get(3)?.parse().ok()?;
    let rss_kib: u64 = fields.get(4)?.parse().ok()?;
    Some((user + sys, rss_kib * 1024))
}

/// Runs `program args` with `envs`, output appended to `log`, under `/usr/bin/time` when
/// available. An error only when the program cannot be started at all; a failing tool is a
/// [`Measured`] with a non-zero exit code.
pub fn run_measured(
    program: &Path,
    args: &[String],
    envs: &[(String, String)],
    log: &Path,
) -> Result<Measured> {
    let time_out = log.with_extension("time");
    let _ = fs::remove_file(&time_out);
    mailferry_benches::host::sync_file_systems();
    let timer = time_binary();
    let mut cmd = match &timer {
        Some(time) => {
            let mut c = Command::new(time);
            c.arg("-f")
                .arg(TIME_FORMAT)
                .arg("-o")
                .arg(&time_out)
                .arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening log {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("log {}", log.display()))?;
    let started = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .with_context(|| format!("starting {}", program.display()))?;
    let wall = started.elapsed();
    let parsed = fs::read_to_string(&time_out)
        .ok()
        .and_then(|t| parse_time_output(&t));
    Ok(Measured {
        wall,
        cpu_secs: parsed.map(|(cpu, _)| cpu),
        peak_rss_bytes: parsed.map(|(_, rss)| rss),
        exit_code: status.code(),
        log: log.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_rss_after_a_non_zero_status_line() {
        let text = "Command exited with non-zero status 1\nMFTIME 2.50 1.25 0.50 20480\n";
        assert_eq!(parse_time_output(text), Some((1.75, 20480 * 1024)));
    }

    #[test]
    fn rejects_time_output_without_our_line() {
        assert_eq!(parse_time_output("Command terminated by signal 9\n"), None);
        assert_eq!(parse_time_output("MFTIME 1.0 x 0.5 10\n"), None);
    }

    #[test]
    fn measures_a_real_child_and_its_exit_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("run.log");
        let m = run_measured(
            Path::new("/bin/sh"),
            &["-c".into(), "echo out; echo err >&2; exit 3".into()],
            &[],
            &log,
        )
        .expect("sh runs");
        assert_eq!(m.exit_code, Some(3));
        assert!(!m.succeeded());
        let tail = m.log_tail(5);
        assert!(tail.contains("out") && tail.contains("err"), "{tail}");
        if time_binary().is_some() {
            assert!(m.peak_rss_bytes.is_some_and(|b| b > 0), "{m:?}");
            assert!(m.cpu_secs.is_some(), "{m:?}");
        }
    }
}
