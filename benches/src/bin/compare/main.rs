//! `compare`: mailferry side by side with mbsync, `doveadm backup` (dsync over imapc) and
//! imapsync, on the same generated mail, the same Dovecot servers and the same injected
//! latency, in one run. Writes `<out>/<name>.md` (table + ratios), `<name>.json` (raw
//! results) and `<name>.png` (chart, via `src/chart.py` and matplotlib when available).
//!
//! `--scenario` picks the question (see `scenario.rs`): `servers` (the default, IMAP → IMAP on
//! the typical/heavy corpora), `big-folder` (`big_folder.rs`: one folder at 5,000 and 200,000
//! messages) or `transfers` (`transfers.rs`: mbox → IMAP import, IMAP → Maildir export). All
//! share the set-up below ([`Setup`]), the measuring and the verification.
//!
//! Design decisions, and why:
//! - **Real servers, real tools, one harness.** Claims of "faster" mean nothing unless every
//!   tool copies the same bytes between the same servers over the same link; the harness owns
//!   all of that, so the figures are reproducible with one command (`benches/compare.sh`).
//! - **Every run is verified**: a fast copy that drops keywords or rewrites headers is not
//!   comparable, and the table says so next to the rate.
//! - **Failure of a peer is a result, not an abort**: a tool that cannot run its cell gets a
//!   row saying why; the exit code is non-zero only when mailferry itself failed or copied
//!   wrongly (what CI must catch) or the harness could not set up.
//!
//! See `benches/README.md` for what is measured and how.

mod big_folder;
mod diff;
mod measure;
mod report;
mod run;
mod scenario;
mod snapshot;
mod tools;
mod transfers;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use mailferry_benches::host;

use crate::report::{RunInfo, RunResult};
use crate::run::{Corpus, SourceServer};
use crate::scenario::Scenario;
use crate::tools::{Installed, ToolKind};

/// Compare mailferry with mbsync, doveadm (dsync/imapc) and imapsync on the same data.
#[derive(Debug, Parser)]
#[command(name = "compare")]
struct Args {
    /// What to run: servers (IMAP → IMAP, every tool), big-folder (one folder at 5,000 and
    /// 200,000 messages) or transfers (mbox → IMAP import, IMAP → Maildir export).
    #[arg(long, default_value = "servers", value_parser = scenario::parse_arg)]
    scenario: Scenario,
    /// Scale factor (servers/transfers: typical 20,000 and heavy 5,000 msgs at 1.0;
    /// big-folder: 5,000 and 200,000 msgs).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Which corpora: typical, heavy or both (default: both for servers, typical for
    /// transfers; big-folder has its own).
    #[arg(long)]
    corpus: Option<String>,
    /// Added round-trip times in ms, comma-separated (0 still goes through the proxy; default:
    /// 0,20 for servers, 0 for the other scenarios).
    #[arg(long, value_delimiter = ',')]
    latency: Option<Vec<u64>>,
    /// Only these tools (comma-separated; default: every installed one).
    #[arg(long, value_delimiter = ',')]
    tools: Vec<String>,
    /// The mailferry binary (default: target/release/mailferry of this workspace).
    #[arg(long)]
    mailferry: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Base name of the output files (default: latest, big-folder or transfers).
    #[arg(long)]
    name: Option<String>,
}

/// What every scenario runs with: the tools found, the latencies, the tokio runtime for the
/// proxies and the read-backs, and where tool logs go.
pub struct Setup {
    /// The tools that run, in table order.
    pub installed: Vec<Installed>,
    /// Added round-trip times, ms.
    pub latencies: Vec<u64>,
    /// `--scale`.
    pub scale: f64,
    /// Corpus names (`typical`, `heavy`) for the scenarios that use them.
    pub corpora: Vec<String>,
    /// Tool logs and work files of kept runs.
    pub logs: PathBuf,
    /// The runtime of proxies and read-backs.
    pub rt: tokio::runtime::Runtime,
}

/// What a scenario hands back to be written.
pub struct Outcome {
    /// `<name>.md`.
    pub markdown: String,
    /// `<name>.json` (the chart script reads its `results`).
    pub json: serde_json::Value,
    /// Every mailferry run ran, exited 0 (first run and re-run) and verified.
    pub mailferry_ok: bool,
}

/// Which tools run, and lines saying which were skipped and why.
fn select_tools(args: &Args) -> Result<(Vec<Installed>, Vec<String>)> {
    let mut wanted = Vec::new();
    for name in &args.tools {
        match ToolKind::parse(name) {
            Some(t) => wanted.push(t),
            None => bail!("unknown tool {name:?} (mailferry, mbsync, doveadm, imapsync)"),
        }
    }
    let mailferry = args
        .mailferry
        .clone()
        .unwrap_or_else(host::default_mailferry);
    let mut found = Vec::new();
    let mut lines = Vec::new();
    for kind in ToolKind::ALL {
        if !wanted.is_empty() && !wanted.contains(&kind) {
            continue;
        }
        match tools::detect(kind, &mailferry) {
            Some(tool) => {
                lines.push(tool.version.clone());
                found.push(tool);
            }
            None => lines.push(match kind {
                ToolKind::Mailferry => format!(
                    "mailferry not runnable at {} (cargo build --release -p mailferry-cli)",
                    mailferry.display()
                ),
                ToolKind::Imapsync => "imapsync skipped (set IMAPSYNC=/path/to/imapsync)".into(),
                other => format!("{other} not installed, skipped"),
            }),
        }
    }
    if !found.iter().any(|t| t.kind == ToolKind::Mailferry) && wanted.is_empty() {
        bail!("{}", lines[0]);
    }
    Ok((found, lines))
}

/// Draws `<name>.png` from `<name>.json` with matplotlib, if python3 has it.
fn draw_chart(json: &Path, png: &Path) -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/chart.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(json)
        .arg(png)
        .output()
        .context("running python3 (needed for the chart)")?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs one servers-style cell and prints its one-line outcome; `None` when the tool could
/// not run at all (said so on stdout).
pub fn run_cell(
    setup: &Setup,
    tool: &Installed,
    corpus: &Corpus,
    source: &SourceServer,
    source_proxy: &mailferry_testkit::Proxy,
    rtt: Duration,
) -> Option<RunResult> {
    print!("   {} at {} ms… ", tool.kind, rtt.as_millis());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    match run::run_tool(
        &setup.rt,
        tool,
        corpus,
        source,
        source_proxy,
        rtt,
        &setup.logs,
    ) {
        Ok(r) => {
            println!(
                "{:.1} s, {:.0} msgs/s, correct: {}",
                r.figures.wall_secs,
                r.figures.msgs_per_sec(),
                r.figures.verdict
            );
            Some(r)
        }
        Err(e) => {
            println!("could not run: {e:#}");
            None
        }
    }
}

/// Whether all `expected` mailferry runs are among `results`, exited 0 (first run and re-run)
/// and verified.
pub fn mailferry_ok(results: &[RunResult], expected: usize) -> bool {
    let mailferry_runs: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.tool == ToolKind::Mailferry)
        .collect();
    mailferry_runs.len() == expected && mailferry_runs.iter().all(|r| r.figures.ok())
}

/// The `servers` scenario: every tool on each corpus at each latency.
fn run_servers(setup: &Setup, info: &RunInfo) -> Result<Outcome> {
    let corpora: Vec<Corpus> = setup
        .corpora
        .iter()
        .map(|name| {
            run::corpus(name, setup.scale)
                .with_context(|| format!("unknown corpus {name:?} (typical, heavy, both)"))
        })
        .collect::<Result<_>>()?;
    let mut results: Vec<RunResult> = Vec::new();
    for corpus in &corpora {
        println!(
            "== {} corpus: {} messages; filling the source Dovecot…",
            corpus.name, corpus.spec.count
        );
        let source = run::start_source(&setup.rt, corpus)?;
        println!(
            "   source holds {} messages, {:.0} MB in {} folders",
            source.snapshot.messages(),
            source.snapshot.bytes() as f64 / 1e6,
            source.snapshot.folders.len()
        );
        for &latency in &setup.latencies {
            let rtt = Duration::from_millis(latency);
            let source_proxy = run::proxy(&setup.rt, source.dovecot.imap_port(), rtt)?;
            for tool in &setup.installed {
                results.extend(run_cell(setup, tool, corpus, &source, &source_proxy, rtt));
            }
        }
    }
    let expected = setup
        .installed
        .iter()
        .any(|t| t.kind == ToolKind::Mailferry) as usize
        * corpora.len()
        * setup.latencies.len();
    Ok(Outcome {
        markdown: report::markdown(info, &results),
        json: serde_json::json!({ "info": info, "results": results }),
        mailferry_ok: mailferry_ok(&results, expected),
    })
}

fn run(args: &Args) -> Result<bool> {
    if !mailferry_testkit::require_dovecot() {
        bail!("Dovecot is needed: run scripts/install-test-deps.sh");
    }
    let (installed, tool_lines) = select_tools(args)?;
    let corpus = args
        .corpus
        .clone()
        .unwrap_or_else(|| args.scenario.default_corpus().to_string());
    let corpora: Vec<String> = match corpus.as_str() {
        "both" => vec!["typical".into(), "heavy".into()],
        one if run::corpus(one, 1.0).is_some() => vec![one.into()],
        other => bail!("unknown corpus {other:?} (typical, heavy, both)"),
    };
    if args.scenario == Scenario::BigFolder && args.corpus.is_some() {
        println!("--corpus is ignored by big-folder (one INBOX of small messages)");
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| args.scenario.default_name().to_string());
    let out_dir = args.out.clone().unwrap_or_else(host::results_dir);
    std::fs::create_dir_all(&out_dir).with_context(|| format!("mkdir {}", out_dir.display()))?;
    let logs = tempfile::Builder::new()
        .prefix("mailferry-compare-logs-")
        .tempdir()?
        .keep();
    println!("Scenario: {}", args.scenario);
    println!("TLS is off for all tools: plaintext IMAP on 127.0.0.1 through a latency proxy.");
    println!("Tools: {}", tool_lines.join("; "));
    println!("Tool logs: {}", logs.display());
    let rt = host::runtime()?;
    let info = RunInfo {
        date: host::now_utc(),
        machine: host::machine(),
        scale: args.scale,
        tools: tool_lines,
        command: host::command_line(),
        scenario: args.scenario.to_string(),
    };
    let setup = Setup {
        installed,
        latencies: args
            .latency
            .clone()
            .unwrap_or_else(|| args.scenario.default_latency()),
        scale: args.scale,
        corpora,
        logs,
        rt,
    };
    let outcome = match args.scenario {
        Scenario::Servers => run_servers(&setup, &info)?,
        Scenario::BigFolder => big_folder::run(&setup, &info)?,
        Scenario::Transfers => transfers::run(&setup, &info)?,
    };
    write_outputs(&out_dir, &name, &outcome)?;
    Ok(outcome.mailferry_ok)
}

/// Writes `<name>.md`, `<name>.json` and, when matplotlib is there, `<name>.png`.
fn write_outputs(out_dir: &Path, name: &str, outcome: &Outcome) -> Result<()> {
    println!("\n{}", outcome.markdown);
    let md_path = out_dir.join(format!("{name}.md"));
    std::fs::write(&md_path, &outcome.markdown)
        .with_context(|| format!("writing {}", md_path.display()))?;
    let json_path = out_dir.join(format!("{name}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&outcome.json)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    let png_path = out_dir.join(format!("{name}.png"));
    match draw_chart(&json_path, &png_path) {
        Ok(()) => println!(
            "Wrote {}, {}, {}",
            md_path.display(),
            json_path.display(),
            png_path.display()
        ),
        Err(e) => println!(
            "Wrote {} and {}; no chart: {e:#}",
            md_path.display(),
            json_path.display()
        ),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("compare: mailferry failed or copied incorrectly (see the table)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("compare: {e:#}");
            ExitCode::from(2)
        }
    }
}
