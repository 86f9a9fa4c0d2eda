//! `local`: mailferry on local stores, measured against mbsync where mbsync can do the same
//! job. In one run: a generated corpus is written as a Maildir++ tree and as an mbox directory;
//! then `mailferry copy maildir:SRC maildir:DST`, mbsync with a Maildir → Maildir channel, and
//! `mailferry copy mbox:SRC maildir:DST` each copy it into a fresh Maildir, are re-run
//! unchanged, and are verified. With `--big`, the peak memory of reading one multi-GB mbox.
//! Writes `<out>/<name>.md` and prints the same table.
//!
//! Design decisions, and why:
//! - **The IMAP harness's measuring and judging, reused, not re-written**: `/usr/bin/time` for
//!   CPU and peak RSS (`compare/measure.rs`), fingerprints and the explained multiset
//!   comparison (`compare/snapshot.rs`, `compare/diff.rs`) are included from `compare/`, so
//!   both harnesses count and explain differences (such as mbsync's lost keywords) the same
//!   way.
//! - **One generator pass writes both sources** and fingerprints what it generated; the
//!   Maildir source is read back and must match before any tool runs, so a tool is never
//!   blamed for a broken bench source.
//! - **mbsync runs after mailferry's Maildir copy**: mbsync renames the source files to record
//!   its UIDs (`,U=`), so mailferry reads the source as generated and mbsync pays its own
//!   first-contact cost, as it would in a real migration.
//! - **Failure of a peer is a row, not an abort**: the exit status is non-zero only when
//!   mailferry failed or copied wrongly (1) or the harness could not set up (2).

#[path = "../compare/tools.rs"]
#[allow(dead_code)] // compare's IMAP tool lines; this harness uses its report reader only.
mod compare_tools;
mod corpus;
#[path = "../compare/diff.rs"]
mod diff;
#[path = "../compare/measure.rs"]
mod measure;
mod readback;
mod report;
mod run;
#[path = "../compare/snapshot.rs"]
#[allow(dead_code)] // compare's IMAP reader; this harness reads Maildirs (readback.rs).
mod snapshot;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use mailferry_benches::host;
use mailferry_benches::text::opt;

use crate::report::{BigRun, LocalRun, RunInfo};
use crate::run::Case;

/// Time mailferry on local stores (Maildir → Maildir vs mbsync, mbox → Maildir, a big mbox).
#[derive(Debug, Parser)]
#[command(name = "local")]
struct Args {
    /// Scale factor of the corpus (20,000 messages at 1.0).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Also measure the peak memory of reading one multi-GB mbox.
    #[arg(long)]
    big: bool,
    /// Size of that mbox in GB (10^9 bytes of canonical mail).
    #[arg(long, default_value_t = 2.0)]
    big_gb: f64,
    /// The mailferry binary (default: target/release/mailferry of this workspace).
    #[arg(long)]
    mailferry: Option<PathBuf>,
    /// Where the stores are written (default: a temp dir, removed afterwards).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Keep the stores and logs.
    #[arg(long)]
    keep: bool,
    /// Output directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Base name of the output file.
    #[arg(long, default_value = "local")]
    name: String,
}

/// Free bytes on the file system holding `dir`, from `df` (std has no statvfs, and the
/// workspace denies unsafe code).
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .args(["-Pk"])
        .arg(dir)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))
}

fn endpoint(scheme: &str, path: &Path) -> String {
    format!("{scheme}:{}", path.display())
}

/// Writes the corpus, runs every tool on it, returns the rows.
fn local_runs(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    mailferry: &Path,
    mbsync: Option<&Path>,
    work: &Path,
    logs: &Path,
) -> Result<Vec<LocalRun>> {
    let spec = corpus::spec(args.scale);
    let (src_maildir, src_mbox) = (work.join("src-maildir"), work.join("src-mbox"));
    println!(
        "Writing {} messages as a Maildir++ tree and an mbox directory…",
        spec.count
    );
    let started = Instant::now();
    let written = corpus::write_sources(rt, &spec, &src_maildir, &src_mbox)?;
    let source = written.snapshot;
    println!(
        "   {} messages, {:.0} MB canonical, {} folders in {:.1} s; checking the Maildir…",
        source.messages(),
        source.bytes() as f64 / 1e6,
        source.folders.len(),
        started.elapsed().as_secs_f64()
    );
    let check = diff::compare(&source, &readback::read_maildir(rt, &src_maildir)?);
    if !check.correct() {
        bail!(
            "the generated Maildir does not read back as generated: {}",
            check.summary()
        );
    }
    let mut cases = Vec::new();
    let case_work = |name: &str| -> Result<PathBuf> {
        let dir = work.join(name);
        mkdir(&dir)?;
        Ok(dir)
    };
    let dir = case_work("mailferry-maildir")?;
    let (from, to) = (
        endpoint("maildir", &src_maildir),
        endpoint("maildir", &dir.join("dst")),
    );
    cases.push(Case {
        tool: "mailferry",
        path: "Maildir → Maildir",
        copy: tools::mailferry_copy(mailferry, &from, &to, &dir),
        verify: Some(tools::mailferry_verify(mailferry, &from, &to, &dir)),
        target: dir.join("dst"),
        work: dir,
    });
    if let Some(mbsync) = mbsync {
        let dir = case_work("mbsync-maildir")?;
        cases.push(Case {
            tool: "mbsync",
            path: "Maildir → Maildir",
            copy: tools::mbsync(mbsync, &src_maildir, &dir.join("dst"), &dir)
                .with_context(|| format!("writing the mbsyncrc in {}", dir.display()))?,
            verify: None,
            target: dir.join("dst"),
            work: dir,
        });
    }
    let dir = case_work("mailferry-mbox")?;
    let (from, to) = (
        endpoint("mbox", &src_mbox),
        endpoint("maildir", &dir.join("dst")),
    );
    cases.push(Case {
        tool: "mailferry",
        path: "mbox → Maildir",
        copy: tools::mailferry_copy(mailferry, &from, &to, &dir),
        verify: Some(tools::mailferry_verify(mailferry, &from, &to, &dir)),
        target: dir.join("dst"),
        work: dir,
    });
    let mut runs = Vec::new();
    for case in &cases {
        print!("   {} {}… ", case.tool, case.path);
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let mut r = run::run_case(rt, case, &source, logs)?;
        if case.tool == "mbsync" {
            let renamed = run::files_with_uid_field(&src_maildir);
            if renamed > 0 {
                r.figures
                    .notes
                    .push(format!("renamed {renamed} source files (adds `,U=` UIDs)"));
            }
        }
        println!(
            "{:.1} s, {:.0} msgs/s, correct: {}; re-run {} s",
            r.figures.wall_secs,
            r.figures.msgs_per_sec(),
            r.figures.verdict,
            opt(r.figures.rerun_secs, 2)
        );
        runs.push(r);
        // The target is judged; keep the disk free for the next case.
        if !args.keep {
            let _ = std::fs::remove_dir_all(&case.target);
        }
    }
    Ok(runs)
}

/// Generates the big mbox, copies it with mailferry, removes it again (unless `--keep`).
fn big_run(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    mailferry: &Path,
    work: &Path,
    logs: &Path,
) -> Result<BigRun> {
    let target_bytes = (args.big_gb * 1e9) as u64;
    let dir = work.join("big");
    mkdir(&dir)?;
    // The file, its Maildir copy (LF: slightly smaller) and headroom.
    let needed = target_bytes * 2 + (1 << 30);
    if let Some(free) = free_bytes(&dir)
        && free < needed
    {
        bail!(
            "{:.1} GB free under {}, the big mbox needs about {:.1} GB (use --big-gb or --work)",
            free as f64 / 1e9,
            dir.display(),
            needed as f64 / 1e9
        );
    }
    let file = dir.join("BIG.mbox");
    println!("Writing a {:.1} GB mbox ({})…", args.big_gb, file.display());
    let started = Instant::now();
    let big = corpus::write_big_mbox(rt, &file, target_bytes)?;
    let file_bytes = std::fs::metadata(&file)
        .with_context(|| format!("stat {}", file.display()))?
        .len();
    println!(
        "   {} messages ({:.2} GB canonical), {:.2} GB on disk in {:.1} s; copying it…",
        big.messages,
        big.canonical_bytes as f64 / 1e9,
        file_bytes as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );
    let (from, to) = (
        endpoint("mbox", &file),
        endpoint("maildir", &dir.join("out")),
    );
    let result = run::run_big(
        &tools::mailferry_copy(mailferry, &from, &to, &dir),
        &tools::mailferry_verify(mailferry, &from, &to, &dir),
        &dir,
        file_bytes,
        big.messages,
        logs,
    );
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let r = result?;
    println!(
        "   {:.1} s, peak RSS {}, correct: {}",
        r.wall_secs,
        r.peak_rss_bytes
            .map_or_else(|| "n/a".into(), |b| format!("{:.0} MB", b as f64 / 1e6)),
        r.verdict
    );
    Ok(r)
}

fn run(args: &Args) -> Result<bool> {
    let mailferry = args
        .mailferry
        .clone()
        .unwrap_or_else(host::default_mailferry);
    let Some(mailferry_version) = tools::version(&mailferry) else {
        bail!(
            "mailferry not runnable at {} (cargo build --release -p mailferry-cli)",
            mailferry.display()
        );
    };
    let load = host::load_average();
    let mbsync = tools::find_mbsync();
    let mut tool_lines = vec![mailferry_version];
    match mbsync.as_deref().and_then(tools::version) {
        Some(v) => tool_lines.push(v),
        None => tool_lines.push("mbsync not installed, skipped".into()),
    }
    if measure::time_binary().is_none() {
        tool_lines.push("no /usr/bin/time: CPU and RSS unknown".into());
    }
    let out_dir = args.out.clone().unwrap_or_else(host::results_dir);
    mkdir(&out_dir)?;
    let temp = match &args.work {
        Some(dir) => {
            mkdir(dir)?;
            tempfile::Builder::new()
                .prefix("mailferry-local-")
                .tempdir_in(dir)?
        }
        None => tempfile::Builder::new()
            .prefix("mailferry-local-")
            .tempdir()?,
    };
    let logs = temp.path().join("logs");
    mkdir(&logs)?;
    println!("Tools: {}", tool_lines.join("; "));
    println!("Work dir: {}", temp.path().display());
    let rt = host::runtime()?;
    let runs = local_runs(&rt, args, &mailferry, mbsync.as_deref(), temp.path(), &logs)?;
    let big = if args.big {
        Some(big_run(&rt, args, &mailferry, temp.path(), &logs)?)
    } else {
        None
    };
    let info = RunInfo {
        date: host::now_utc(),
        machine: host::machine(),
        load,
        scale: args.scale,
        tools: tool_lines,
        command: host::command_line(),
    };
    let md = report::markdown(&info, &runs, big.as_ref());
    println!("\n{md}");
    let md_path = out_dir.join(format!("{}.md", args.name));
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    println!("Wrote {}", md_path.display());
    if args.keep {
        println!("Kept {}", temp.keep().display());
    }
    let mailferry_ok = runs
        .iter()
        .filter(|r| r.tool == "mailferry")
        .all(|r| r.figures.ok())
        && big
            .as_ref()
            .is_none_or(|b| b.exit_code == Some(0) && b.verdict == "yes");
    Ok(mailferry_ok)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("local: mailferry failed or copied incorrectly (see the table)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("local: {e:#}");
            ExitCode::from(2)
        }
    }
}
