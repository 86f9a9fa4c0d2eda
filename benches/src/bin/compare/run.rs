//! One comparison cell: a tool copies one corpus at one latency into a fresh target Dovecot,
//! is measured, re-run unchanged, and judged by reading both servers back.
//!
//! Why a fresh target per tool run and one source per corpus: targets must start empty for
//! first-copy figures, while the source (filled once, through `Dovecot::fill`, and read once
//! by the harness before any tool runs) is warm — indexes built, files in the page cache —
//! for every tool alike, so no tool pays for the warm-up the next one enjoys.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use mailferry_benches::figures::RunFigures;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::{Dovecot, DovecotOptions, Proxy, ProxyOptions};
use tokio::runtime::Runtime;

use crate::diff::{Verdict, compare};
use crate::measure::{Measured, run_measured};
use crate::report::RunResult;
use crate::snapshot::{Snapshot, read_server};
use crate::tools::{self, Endpoints, Installed, ToolKind};

/// A named corpus at a scale.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// `typical`, `heavy`, or `inbox-<count>` (the `big-folder` scenario).
    pub name: String,
    /// What to generate.
    pub spec: CorpusSpec,
}

/// Messages in each corpus at scale 1.0.
const TYPICAL_COUNT: f64 = 20_000.0;
const HEAVY_COUNT: f64 = 5_000.0;
/// Below this a run measures start-up, not copying.
pub const MIN_COUNT: usize = 20;

/// The corpus `name` (`typical` or `heavy`) at `scale`: several folders (one non-ASCII, one
/// nested, Sent with its special-use role) and the generator's quirks (LF-only messages,
/// byte-identical duplicates, reused and missing Message-IDs, 8-bit headers, keywords).
pub fn corpus(name: &str, scale: f64) -> Option<Corpus> {
    let (name, base, sizes) = match name {
        "typical" => ("typical".to_string(), TYPICAL_COUNT, SizeMix::typical()),
        "heavy" => ("heavy".to_string(), HEAVY_COUNT, SizeMix::heavy()),
        _ => return None,
    };
    let count = ((base * scale).round() as usize).max(MIN_COUNT);
    let folders = vec![
        mailferry_core::FolderPath::inbox(),
        mailferry_core::FolderPath::new(["Sent"]),
        mailferry_core::FolderPath::new(["Archive", "2020"]),
        mailferry_core::FolderPath::new(["Archive", "2021"]),
        mailferry_core::FolderPath::new(["Projekte", "Übersicht"]),
        mailferry_core::FolderPath::new(["Lists", "rust-users"]),
    ];
    let spec = CorpusSpec::new(count, sizes)
        .in_folders(folders)
        .with_quirks();
    Some(Corpus { name, spec })
}

/// A started source: Dovecot filled with the corpus, and what it holds.
pub struct SourceServer {
    /// The server.
    pub dovecot: Dovecot,
    /// Its contents, read back once.
    pub snapshot: Snapshot,
}

/// Starts a Dovecot, fills it with `corpus` and reads it back (which also warms it).
pub fn start_source(rt: &Runtime, corpus: &Corpus) -> Result<SourceServer> {
    let dovecot = Dovecot::start(DovecotOptions::default()).context("starting source Dovecot")?;
    let (user, password) = dovecot.login();
    let (user, password) = (user.to_string(), password.to_string());
    let written = dovecot
        .fill(&user, corpus.spec.generate())
        .context("filling the source Maildir")?;
    let snapshot = rt
        .block_on(read_server(dovecot.imap_port(), &user, &password))
        .context("reading the source back")?;
    if let Some((folder, error)) = snapshot.unreadable.iter().next() {
        anyhow::bail!("source folder {folder} unreadable: {error}");
    }
    anyhow::ensure!(
        snapshot.messages() == written,
        "source holds {} messages after fill wrote {written}",
        snapshot.messages()
    );
    Ok(SourceServer { dovecot, snapshot })
}

/// Starts a proxy in front of `port` with `rtt`.
pub fn proxy(rt: &Runtime, port: u16, rtt: Duration) -> Result<Proxy> {
    let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    rt.block_on(Proxy::start(
        upstream,
        ProxyOptions {
            round_trip: rtt,
            cut_after_bytes: None,
        },
    ))
    .context("starting the latency proxy")
}

/// The `dovecot.conf` of a testkit instance: `<dir>/dovecot.conf`, where the user's Maildir is
/// `<dir>/home/<user>/Maildir` (the testkit has no accessor for it yet).
pub fn dovecot_config(dovecot: &Dovecot, user: &str) -> PathBuf {
    let maildir = dovecot.maildir(user);
    maildir
        .ancestors()
        .nth(3)
        .map_or_else(PathBuf::new, |dir| dir.join("dovecot.conf"))
}

/// Runs `tool` on `source` through a proxy with `rtt`, verifies, re-runs, verifies again.
pub fn run_tool(
    rt: &Runtime,
    tool: &Installed,
    corpus: &Corpus,
    source: &SourceServer,
    source_proxy: &Proxy,
    rtt: Duration,
    logs: &Path,
) -> Result<RunResult> {
    let target = Dovecot::start(DovecotOptions::default()).context("starting target Dovecot")?;
    let target_proxy = proxy(rt, target.imap_port(), rtt)?;
    let (user, password) = target.login();
    let (user, password) = (user.to_string(), password.to_string());
    let work = tempfile::Builder::new()
        .prefix(&format!("mailferry-compare-{}-", tool.kind))
        .tempdir()
        .context("creating a work dir")?;
    let endpoints = Endpoints {
        source_port: source_proxy.addr().port(),
        target_port: target_proxy.addr().port(),
        user: user.clone(),
        password: password.clone(),
        target_config: dovecot_config(&target, &user),
    };
    let invocation = tools::prepare(tool, &endpoints, work.path())?;
    let label = format!("{}-{}-{}ms", tool.kind, corpus.name, rtt.as_millis());
    let run = |attempt: &str| -> Result<Measured> {
        run_measured(
            &invocation.program,
            &invocation.args,
            &invocation.envs,
            &logs.join(format!("{label}-{attempt}.log")),
        )
    };
    let first = run("first")?;
    let mut notes: Vec<String> = first.failure_note("first run").into_iter().collect();
    if tool.kind == ToolKind::Mailferry {
        notes.extend(tools::mailferry_report_notes(
            work.path(),
            source.snapshot.messages(),
        ));
    }
    let after_first = verify(rt, &source.snapshot, &target, &user, &password)?;
    let rerun = run("rerun")?;
    notes.extend(rerun.failure_note("re-run"));
    if tool.kind == ToolKind::Mailferry {
        // Expecting 0 copied: anything copied on an unchanged pair is worth a note.
        notes.extend(tools::mailferry_rerun_note(work.path()));
    }
    let after_rerun = verify(rt, &source.snapshot, &target, &user, &password)?;
    let mut verdict = after_first.summary();
    if after_rerun != after_first {
        verdict = format!("{verdict}; after re-run: {}", after_rerun.summary());
    }
    if tool.kind == ToolKind::Doveadm {
        notes.extend(tools::doveadm_log_errors(&work.path().join("doveadm.log")));
    }
    notes.extend(server_errors(&target));
    Ok(RunResult {
        tool: tool.kind,
        tool_version: tool.version.clone(),
        corpus: corpus.name.clone(),
        latency_ms: rtt.as_millis() as u64,
        figures: RunFigures {
            correct: after_first.correct() && after_rerun.correct(),
            verdict,
            notes,
            ..first.figures(
                source.snapshot.messages(),
                source.snapshot.bytes(),
                Some(&rerun),
            )
        },
    })
}

/// The target Dovecot's error lines, as a note.
pub fn server_errors(target: &Dovecot) -> Vec<String> {
    let errors = target.log_errors();
    match errors.first() {
        Some(first) => vec![format!(
            "target Dovecot logged {} errors, first: {first}",
            errors.len()
        )],
        None => Vec::new(),
    }
}

/// Reads the target directly (not through the proxy) and compares it with the source.
pub fn verify(
    rt: &Runtime,
    source: &Snapshot,
    target: &Dovecot,
    user: &str,
    password: &str,
) -> Result<Verdict> {
    let snapshot = rt
        .block_on(read_server(target.imap_port(), user, password))
        .context("reading the target back")?;
    Ok(compare(source, &snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpora_scale_with_a_floor_and_unknown_names_are_refused() {
        let typical = corpus("typical", 0.25).expect("typical");
        assert_eq!(typical.spec.count, 5_000);
        assert_eq!(corpus("heavy", 1.0).expect("heavy").spec.count, 5_000);
        assert_eq!(
            corpus("heavy", 0.0001).expect("heavy").spec.count,
            MIN_COUNT
        );
        assert!(typical.spec.quirks);
        assert!(corpus("huge", 1.0).is_none());
    }

    #[test]
    fn a_faithful_target_verifies_and_one_without_keywords_does_not() {
        if !mailferry_testkit::require_dovecot() {
            return;
        }
        let rt = mailferry_benches::host::runtime().expect("runtime");
        let corpus = corpus("typical", 0.01).expect("typical");
        let source = start_source(&rt, &corpus).expect("source");
        let keywords: usize = source
            .snapshot
            .folders
            .values()
            .flatten()
            .map(|f| f.flags.iter().filter(|t| !t.starts_with('\\')).count())
            .sum();
        assert!(keywords > 0, "the corpus has keywords to lose");
        let faithful = Dovecot::start(DovecotOptions::default()).expect("faithful target");
        let (user, password) = faithful.login();
        faithful
            .fill(user, corpus.spec.generate())
            .expect("fill faithful");
        let v = verify(&rt, &source.snapshot, &faithful, user, password).expect("verify");
        assert!(v.correct(), "{}", v.summary());
        assert_eq!(v.matched, source.snapshot.messages());
        let lossy = Dovecot::start(DovecotOptions::default()).expect("lossy target");
        lossy
            .fill(
                user,
                corpus.spec.generate().map(|mut m| {
                    m.flags.keywords.clear();
                    m
                }),
            )
            .expect("fill lossy");
        let v = verify(&rt, &source.snapshot, &lossy, user, password).expect("verify");
        assert_eq!(v.summary(), format!("no: {keywords} keywords lost"));
    }
}
