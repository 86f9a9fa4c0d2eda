//! `compare`: mailferry side by side with mbsync, `doveadm backup` (dsync over imapc) and
//! imapsync, on the same generated mail, the same Dovecot servers and the same injected
//! latency, in one run. Writes `<out>/<name>.md` (table + ratios), `<name>.json` (raw
//! results) and `<name>.png` (chart, via `src/chart.py` and matplotlib when available).
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

mod diff;
mod measure;
mod report;
mod run;
mod snapshot;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::report::{RunInfo, RunResult};
use crate::tools::{Installed, ToolKind};

/// Compare mailferry with mbsync, doveadm (dsync/imapc) and imapsync on the same data.
#[derive(Debug, Parser)]
#[command(name = "compare")]
struct Args {
    /// Scale factor for the corpora (typical: 20,000 msgs, heavy: 5,000 msgs at 1.0).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Which corpora: typical, heavy or both.
    #[arg(long, default_value = "both")]
    corpus: String,
    /// Added round-trip times in ms, comma-separated (0 still goes through the proxy).
    #[arg(long, default_value = "0,20", value_delimiter = ',')]
    latency: Vec<u64>,
    /// Only these tools (comma-separated; default: every installed one).
    #[arg(long, value_delimiter = ',')]
    tools: Vec<String>,
    /// The mailferry binary (default: target/release/mailferry of this workspace).
    #[arg(long)]
    mailferry: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Base name of the output files.
    #[arg(long, default_value = "latest")]
    name: String,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn default_mailferry() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join("release").join("mailferry")
}

/// CPU model and core count, from /proc/cpuinfo.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    mailferry_core::InternalDate::from_timestamp(secs).to_imap()
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
    let mailferry = args.mailferry.clone().unwrap_or_else(default_mailferry);
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

fn run(args: &Args) -> Result<bool> {
    if !mailferry_testkit::require_dovecot() {
        bail!("Dovecot is needed: run scripts/install-test-deps.sh");
    }
    let (installed, tool_lines) = select_tools(args)?;
    let corpora: Vec<run::Corpus> = match args.corpus.as_str() {
        "both" => vec!["typical", "heavy"],
        one => vec![one],
    }
    .into_iter()
    .map(|name| {
        run::corpus(name, args.scale)
            .with_context(|| format!("unknown corpus {name:?} (typical, heavy, both)"))
    })
    .collect::<Result<_>>()?;
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("results"));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("mkdir {}", out_dir.display()))?;
    let logs = tempfile::Builder::new()
        .prefix("mailferry-compare-logs-")
        .tempdir()?
        .keep();
    println!("TLS is off for all tools: plaintext IMAP on 127.0.0.1 through a latency proxy.");
    println!("Tools: {}", tool_lines.join("; "));
    println!("Tool logs: {}", logs.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let mut results: Vec<RunResult> = Vec::new();
    for corpus in &corpora {
        println!(
            "== {} corpus: {} messages; filling the source Dovecot…",
            corpus.name, corpus.spec.count
        );
        let source = run::start_source(&rt, corpus)?;
        println!(
            "   source holds {} messages, {:.0} MB in {} folders",
            source.snapshot.messages(),
            source.snapshot.bytes() as f64 / 1e6,
            source.snapshot.folders.len()
        );
        for &latency in &args.latency {
            let rtt = Duration::from_millis(latency);
            let source_proxy = run::proxy(&rt, source.dovecot.imap_port(), rtt)?;
            for tool in &installed {
                print!("   {} at {latency} ms… ", tool.kind);
                let _ = std::io::Write::flush(&mut std::io::stdout());
                match run::run_tool(&rt, tool, corpus, &source, &source_proxy, rtt, &logs) {
                    Ok(r) => {
                        println!(
                            "{:.1} s, {:.0} msgs/s, correct: {}",
                            r.wall_secs,
                            r.msgs_per_sec(),
                            r.verdict
                        );
                        results.push(r);
                    }
                    Err(e) => println!("could not run: {e:#}"),
                }
            }
        }
    }
    let info = RunInfo {
        date: now_utc(),
        machine: machine(),
        scale: args.scale,
        tools: tool_lines,
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    };
    let md = report::markdown(&info, &results);
    println!("\n{md}");
    let md_path = out_dir.join(format!("{}.md", args.name));
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    let json_path = out_dir.join(format!("{}.json", args.name));
    let json = serde_json::json!({ "info": info, "results": results });
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    let png_path = out_dir.join(format!("{}.png", args.name));
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
    let mailferry_runs: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.tool == ToolKind::Mailferry)
        .collect();
    let expected = installed.iter().any(|t| t.kind == ToolKind::Mailferry) as usize
        * corpora.len()
        * args.latency.len();
    Ok(mailferry_runs.len() == expected
        && mailferry_runs
            .iter()
            .all(|r| r.correct && r.exit_code == Some(0) && r.rerun_exit_code == Some(0)))
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
