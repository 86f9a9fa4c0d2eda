//! Dovecot → Cyrus → Dovecot, measured: how long writing the same generated corpus takes into
//! Dovecot and into Cyrus (wall time, our CPU, the target server's CPU, commands sent), and what
//! each hop kept of the generated corpus and of the shared real-world corpora, per folder:
//! exact, rewritten by the target (Cyrus's 8-bit header rewrite, modelled exactly), or failed
//! with the reason.
//!
//! `cargo run --release -p mailferry-examples --example cyrus_vs_dovecot [COUNT] [ROUNDS]`
//! (defaults 1500 and 2). Needs Dovecot and Cyrus (`bash scripts/install-test-deps.sh`); the
//! shared corpora are read from `../shared/corpora` if present.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use mailferry::core::normalise::canonicalise;
use mailferry::core::{
    Checksum, Copier, CopyOptions, Flags, FolderPath, InternalDate, MemoryState, MemoryStore,
    Report, Source, Target,
};
use mailferry::imap::{Auth, ImapConfig, ImapStore, Secret, Security, WireTrace};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::server::munge_8bit_headers;
use mailferry_testkit::{ImapServer, ServerKind};

/// CPU seconds (user + system, children reaped included) of every process in group `pgid`.
fn group_cpu(pgid: u32) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let mut total = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for entry in dir.filter_map(Result::ok) {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state): pgrp is field 5, utime..cstime fields 14..17.
        if f.get(2).and_then(|p| p.parse::<u32>().ok()) != Some(pgid) {
            continue;
        }
        total += (11..=14)
            .filter_map(|i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
            .sum::<u64>();
    }
    total as f64 / ticks
}

/// Our own CPU seconds so far.
fn own_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    (11..=12)
        .filter_map(|i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum::<u64>() as f64
        / 100.0
}

fn config(server: &dyn ImapServer, trace: Option<&WireTrace>) -> ImapConfig {
    let (user, password) = server.login();
    let mut c = ImapConfig::new(
        server.host(),
        server.imaps_port(),
        Security::Tls,
        Auth::Login {
            user: user.into(),
            password: Secret::new(password.to_string()),
        },
    )
    .with_ca_file(server.ca_pem_path());
    if let Some(t) = trace {
        c = c.with_wire_trace(t.clone());
    }
    c
}

async fn store(server: &dyn ImapServer, trace: Option<&WireTrace>) -> anyhow::Result<ImapStore> {
    Ok(ImapStore::connect(config(server, trace)).await?)
}

async fn copy(source: Arc<dyn Source>, target: Arc<dyn Target>) -> anyhow::Result<Report> {
    // MAILFERRY_WRITERS=N: appending sessions per folder (default 2), to see how a server that
    // locks a mailbox for each APPEND (Cyrus) takes parallel appends into one folder.
    let mut options = CopyOptions::default();
    if let Some(n) = std::env::var("MAILFERRY_WRITERS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        options.writers_per_folder = n;
    }
    let copier = Copier::new(source, target, Arc::new(MemoryState::new()), options);
    let plan = copier.identity_plan().await?;
    Ok(copier.run(plan).await?)
}

async fn read_back(server: &dyn ImapServer) -> anyhow::Result<MemoryStore> {
    let back = MemoryStore::new();
    let r = copy(Arc::new(store(server, None).await?), Arc::new(back.clone())).await?;
    anyhow::ensure!(r.totals.failed == 0, "reading back failed: {r:?}");
    Ok(back)
}

/// Per folder: canonical checksums with multiplicity.
fn checksums(store: &MemoryStore) -> BTreeMap<FolderPath, HashMap<Checksum, usize>> {
    let mut out = BTreeMap::new();
    for path in store.folder_paths() {
        let mut m: HashMap<Checksum, usize> = HashMap::new();
        for msg in store.messages(&path).into_values() {
            *m.entry(Checksum::of(&canonicalise(msg.body).0))
                .or_default() += 1;
        }
        out.insert(path, m);
    }
    out
}

/// (exact, rewritten, missing) of `from` in `to`, per folder.
fn classify(from: &MemoryStore, to: &MemoryStore) -> BTreeMap<FolderPath, (usize, usize, usize)> {
    let mut have = checksums(to);
    let mut out = BTreeMap::new();
    for path in from.folder_paths() {
        let there = have.entry(path.clone()).or_default();
        let mut row = (0, 0, 0);
        for msg in from.messages(&path).into_values() {
            let (canonical, _) = canonicalise(msg.body);
            let exact = Checksum::of(&canonical);
            let munged = Checksum::of(&munge_8bit_headers(&canonical));
            let mut take = |c: &Checksum| match there.get_mut(c) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            };
            if take(&exact) {
                row.0 += 1;
            } else if take(&munged) {
                row.1 += 1;
            } else {
                row.2 += 1;
            }
        }
        if row != (0, 0, 0) {
            out.insert(path, row);
        }
    }
    out
}

/// Failure reasons per target folder, counted.
fn reasons(report: &Report) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for f in &report.folders {
        for issue in &f.failures {
            *out.entry(f.source.to_string())
                .or_default()
                .entry(issue.reason.clone())
                .or_default() += 1;
        }
        if let Some(e) = &f.error {
            *out.entry(f.source.to_string())
                .or_default()
                .entry(format!("folder: {e}"))
                .or_default() += f.counts.seen as usize;
        }
    }
    out
}

fn shared_corpora(into: &MemoryStore) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no shared corpora at {}", dir.display());
        return 0;
    };
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "eml" | "raw" | "txt"))
            {
                out.push(p);
            }
        }
    }
    let mut n = 0;
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    for sub in subdirs {
        let name = sub
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let folder = FolderPath::new(["corpora", name.as_str()]);
        let mut files = Vec::new();
        walk(&sub, &mut files);
        files.sort();
        for (i, f) in files.iter().enumerate() {
            if let Ok(bytes) = std::fs::read(f)
                && !bytes.is_empty()
            {
                into.insert(
                    &folder,
                    bytes.into(),
                    Flags::default(),
                    Some(InternalDate::from_timestamp(1_600_000_000 + i as i64 * 60)),
                );
                n += 1;
            }
        }
    }
    n
}

fn print_table(
    title: &str,
    source: &MemoryStore,
    cyrus: &MemoryStore,
    last: &MemoryStore,
    to_cyrus: &Report,
    to_last: &Report,
) {
    let first = classify(source, cyrus);
    let second = classify(cyrus, last);
    let r1 = reasons(to_cyrus);
    let r2 = reasons(to_last);
    println!("\n{title}");
    println!(
        "| folder | source | → Cyrus exact | rewritten by Cyrus | failed | → Dovecot exact (vs Cyrus) | failed | failure reasons |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    let mut totals = [0usize; 6];
    for (path, (exact, rewritten, missing)) in &first {
        let (e2, r2x, m2) = second.get(path).copied().unwrap_or((0, 0, 0));
        let total = exact + rewritten + missing;
        let mut why: Vec<String> = Vec::new();
        for r in [&r1, &r2] {
            if let Some(m) = r.get(&path.to_string()) {
                why.extend(m.iter().map(|(k, n)| format!("{n}× {k}")));
            }
        }
        println!(
            "| {path} | {total} | {exact} | {rewritten} | {missing} | {e2} | {} | {} |",
            r2x + m2,
            why.join("; ")
        );
        for (t, v) in totals
            .iter_mut()
            .zip([total, *exact, *rewritten, *missing, e2, r2x + m2])
        {
            *t += v;
        }
    }
    println!(
        "| **total** | {} | {} | {} | {} | {} | {} | |",
        totals[0], totals[1], totals[2], totals[3], totals[4], totals[5]
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !ServerKind::Dovecot.available() || !ServerKind::Cyrus.available() {
        anyhow::bail!("Dovecot and Cyrus are needed: run `bash scripts/install-test-deps.sh`");
    }
    let count: usize = std::env::args().nth(1).map_or(Ok(1_500), |s| s.parse())?;
    let rounds: usize = std::env::args().nth(2).map_or(Ok(2), |s| s.parse())?;
    let folders = vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2024"]),
        FolderPath::new(["Projets", "Été"]),
        FolderPath::new(["Sent"]),
    ];
    let generated = CorpusSpec::new(count, SizeMix::typical())
        .with_quirks()
        .in_folders(folders)
        .messages();
    let bytes: usize = generated.iter().map(|m| m.body.len()).sum();
    let source = ServerKind::Dovecot.start('/').context("source Dovecot")?;
    source.fill(source.login().0, generated)?;
    let src: Arc<dyn Source> = Arc::new(store(&*source, None).await?);
    println!(
        "write time: {count} generated messages ({:.1} MB) from Dovecot into a fresh target, \
         default options, implicit TLS",
        bytes as f64 / 1e6
    );
    println!("| target | round | wall s | our CPU s | target server CPU s | commands sent |");
    println!("|---|---:|---:|---:|---:|---:|");
    let dir = tempfile::tempdir()?;
    // Dovecot as the tests run it (`mail_fsync = never`) and with its default
    // (`optimized`: fsync once per transaction, i.e. per APPEND command); Cyrus as shipped.
    let targets: [(&str, ServerKind, &str); 3] = [
        ("Dovecot, mail_fsync=never", ServerKind::Dovecot, ""),
        (
            "Dovecot, mail_fsync=optimized",
            ServerKind::Dovecot,
            "mail_fsync = optimized\n",
        ),
        ("Cyrus, default", ServerKind::Cyrus, ""),
    ];
    for round in 1..=rounds {
        for (name, kind, extra) in targets {
            let target: Box<dyn ImapServer> = match kind {
                ServerKind::Dovecot => Box::new(
                    mailferry_testkit::Dovecot::start(mailferry_testkit::DovecotOptions {
                        extra_config: extra.into(),
                        ..Default::default()
                    })
                    .context("target Dovecot")?,
                ),
                ServerKind::Cyrus => kind.start('.').context("target Cyrus")?,
            };
            let trace_path = dir
                .path()
                .join(format!("{kind:?}-{round}-{}.trace", extra.len()));
            let trace = WireTrace::to_file(&trace_path)?;
            let dst: Arc<dyn Target> = Arc::new(store(&*target, Some(&trace)).await?);
            let pgid = target.pid().context("target pid")?;
            // MAILFERRY_STRACE=1: count the target server's syscalls (slows it down: a separate
            // run from the timed ones).
            let strace_out = dir
                .path()
                .join(format!("{kind:?}-{round}-{}.strace", extra.len()));
            let mut strace = match std::env::var("MAILFERRY_STRACE").as_deref() {
                Ok("1") => Some(
                    std::process::Command::new("strace")
                        .args(["-f", "-c", "-w", "-e", "trace=fsync,fdatasync,msync,rename,link,openat,write,writev,pwrite64,mmap,munmap,fcntl,flock"])
                        .arg("-o")
                        .arg(&strace_out)
                        .arg("-p")
                        .arg(pgid.to_string())
                        .spawn()?,
                ),
                _ => None,
            };
            if strace.is_some() {
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            let (cpu0, own0) = (group_cpu(pgid), own_cpu());
            let started = Instant::now();
            let report = copy(Arc::clone(&src), dst).await?;
            let wall = started.elapsed().as_secs_f64();
            let (cpu1, own1) = (group_cpu(pgid), own_cpu());
            anyhow::ensure!(
                report.totals.copied as usize == count,
                "{:?}",
                report.totals
            );
            if let Some(mut child) = strace.take() {
                let _ = std::process::Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status();
                let _ = child.wait();
                println!(
                    "strace of {name}:\n{}",
                    std::fs::read_to_string(&strace_out).unwrap_or_default()
                );
            }
            drop(trace);
            // Commands: client lines that start with a tag and a verb (a MULTIAPPEND's
            // further messages are continuation lines, not commands).
            let text = std::fs::read_to_string(&trace_path)?;
            let commands: Vec<&str> = text
                .lines()
                .filter_map(|l| l.split_once(" C: ").map(|(_, c)| c))
                .filter(|c| {
                    let mut w = c.split(' ');
                    let tag = w.next().unwrap_or("");
                    let verb = w.next().unwrap_or("");
                    !tag.is_empty()
                        && tag.bytes().all(|b| b.is_ascii_alphanumeric())
                        && verb.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
                })
                .collect();
            let appends = commands.iter().filter(|c| c.contains(" APPEND ")).count();
            println!(
                "| {name} | {round} | {wall:.2} | {:.2} | {:.2} | {} ({appends} APPEND) |",
                own1 - own0,
                cpu1 - cpu0,
                commands.len()
            );
        }
    }

    // Fidelity: the generated corpus and the shared corpora, Dovecot → Cyrus → Dovecot.
    let memory = MemoryStore::new();
    let shared = shared_corpora(&memory);
    let corpora_source = ServerKind::Dovecot.start('/').context("corpora Dovecot")?;
    let into_source = copy(
        Arc::new(memory.clone()),
        Arc::new(store(&*corpora_source, None).await?),
    )
    .await?;
    println!(
        "\nshared corpora: {shared} files; into the source Dovecot: {} copied, {} refused",
        into_source.totals.copied, into_source.totals.failed
    );
    for (f, why) in reasons(&into_source) {
        for (reason, n) in why {
            println!("  {f}: {n}× {reason}");
        }
    }
    for (title, from) in [
        ("generated corpus", &*source),
        ("shared corpora", &*corpora_source),
    ] {
        let cyrus = ServerKind::Cyrus.start('.').context("Cyrus")?;
        let last = ServerKind::Dovecot.start('.').context("last Dovecot")?;
        let to_cyrus = copy(
            Arc::new(store(from, None).await?),
            Arc::new(store(&*cyrus, None).await?),
        )
        .await?;
        let to_last = copy(
            Arc::new(store(&*cyrus, None).await?),
            Arc::new(store(&*last, None).await?),
        )
        .await?;
        print_table(
            &format!("{title}: Dovecot → Cyrus → Dovecot"),
            &read_back(from).await?,
            &read_back(&*cyrus).await?,
            &read_back(&*last).await?,
            &to_cyrus,
            &to_last,
        );
    }
    Ok(())
}
