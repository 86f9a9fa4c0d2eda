//! `plan`: many mailbox pairs from one file, like imapsync's bulk mode but built in. Mailboxes
//! run `--jobs` at a time, each with its own state file (so re-running the plan resumes it) and
//! its own outcome: a failed mailbox is reported and the others go on.
//!
//! TOML:
//! ```toml
//! [[mailbox]]
//! source = "imaps://alice@old.example.org"
//! target = "imaps://alice@new.example.org"
//! source_password_file = "secrets/alice-old"   # or source_password_env = "ALICE_OLD"
//! target_password_file = "secrets/alice-new"
//! ```
//! CSV: `source,target[,source_password_file,target_password_file]`, an optional header row.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use mailferry::core::Counts;
use mailferry::core::futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::args::{AccessArgs, PlanArgs, RunArgs};
use crate::pair::{MailboxReport, Mode, PairSpec, default_state_path, run_pair, write_report};
use crate::secrets::SecretSpec;
use crate::{Exit, Failure};

/// One row of a plan.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanEntry {
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub source_password_file: Option<PathBuf>,
    #[serde(default)]
    pub target_password_file: Option<PathBuf>,
    #[serde(default)]
    pub source_password_env: Option<String>,
    #[serde(default)]
    pub target_password_env: Option<String>,
    #[serde(default)]
    pub source_oauth2_command: Option<String>,
    #[serde(default)]
    pub target_oauth2_command: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlPlan {
    mailbox: Vec<PlanEntry>,
}

/// Reads a plan; relative password-file paths are relative to the plan's directory.
pub fn read_plan(path: &Path) -> anyhow::Result<Vec<PlanEntry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the plan {}", path.display()))?;
    let mut entries = if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str::<TomlPlan>(&text)
            .with_context(|| format!("{} is not a valid TOML plan", path.display()))?
            .mailbox
    } else {
        parse_csv(&text).with_context(|| format!("{} is not a valid CSV plan", path.display()))?
    };
    if entries.is_empty() {
        bail!("the plan {} lists no mailbox", path.display());
    }
    let base = path.parent().unwrap_or(Path::new("."));
    for e in &mut entries {
        for f in [&mut e.source_password_file, &mut e.target_password_file]
            .into_iter()
            .flatten()
        {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
    }
    Ok(entries)
}

fn parse_csv(text: &str) -> anyhow::Result<Vec<PlanEntry>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (n == 0 && line.starts_with("source,")) {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if !(2..=4).contains(&cols.len()) {
            bail!(
                "line {}: expected source,target[,source_password_file,target_password_file]",
                n + 1
            );
        }
        let file = |i: usize| cols.get(i).filter(|s| !s.is_empty()).map(PathBuf::from);
        out.push(PlanEntry {
            source: cols[0].to_string(),
            target: cols[1].to_string(),
            source_password_file: file(2),
            target_password_file: file(3),
            source_password_env: None,
            target_password_env: None,
            source_oauth2_command: None,
            target_oauth2_command: None,
        });
    }
    Ok(out)
}

/// The `--report` JSON of a plan.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub mailboxes: Vec<MailboxReport>,
    pub totals: Counts,
    pub failed_mailboxes: usize,
    pub duration_secs: f64,
    pub items_per_sec: f64,
}

pub async fn run(args: PlanArgs, quiet: bool) -> Result<Exit, Failure> {
    let entries = read_plan(&args.file).map_err(Failure::usage)?;
    let started = Instant::now();
    let args = Arc::new(args);
    let reports: Vec<MailboxReport> = stream::iter(entries.into_iter().map(|entry| {
        let args = Arc::clone(&args);
        async move {
            let state_path = match &args.state_dir {
                Some(dir) => {
                    let name = default_state_path(&format!("{} -> {}", entry.source, entry.target))
                        .ok()
                        .and_then(|p| p.file_name().map(|f| f.to_owned()));
                    name.map(|n| dir.join(n))
                }
                None => None,
            };
            let spec = PairSpec {
                source: entry.source.clone(),
                target: entry.target.clone(),
                source_secret: SecretSpec {
                    password_file: entry.source_password_file.clone(),
                    oauth2_command: entry.source_oauth2_command.clone(),
                    password_env: entry.source_password_env.clone(),
                },
                target_secret: SecretSpec {
                    password_file: entry.target_password_file.clone(),
                    oauth2_command: entry.target_oauth2_command.clone(),
                    password_env: entry.target_password_env.clone(),
                },
                access: AccessArgs {
                    ca_file: args.ca_file.clone(),
                    insecure: args.insecure,
                    connections: args.connections,
                    ..AccessArgs::default()
                },
                run: RunArgs {
                    dry_run: args.dry_run,
                    jobs: 2,
                    manifest: args.manifest_dir.as_deref().map(|d| {
                        crate::manifest_cmd::plan_manifest_path(d, &entry.source, &entry.target)
                    }),
                    ..default_run_args()
                },
                state_path,
            };
            let report = run_pair(Mode::Copy, &spec, true).await;
            if !quiet {
                let copied = report.copy.as_ref().map_or(0, |r| r.totals.copied);
                let failed = report.copy.as_ref().map_or(0, |r| r.totals.failed);
                match &report.error {
                    Some(e) => eprintln!("{} -> {}: FAILED: {e}", report.source, report.target),
                    None => eprintln!(
                        "{} -> {}: {} ({copied} copied, {failed} failed)",
                        report.source, report.target, report.outcome
                    ),
                }
            }
            report
        }
    }))
    .buffer_unordered(args.jobs.max(1))
    .collect()
    .await;
    let mut totals = Counts::default();
    for r in &reports {
        if let Some(c) = &r.copy {
            totals.add(&c.totals);
        }
    }
    let duration = started.elapsed().as_secs_f64();
    let failed_mailboxes = reports.iter().filter(|r| r.exit_code != 0).count();
    let worst = reports
        .iter()
        .map(MailboxReport::exit)
        .max()
        .unwrap_or(Exit::Ok);
    if !quiet {
        println!(
            "{} mailboxes, {} failed; {} items copied ({} already, {} existing, {} failed) in {:.1} s",
            reports.len(),
            failed_mailboxes,
            totals.copied,
            totals.already_copied,
            totals.skipped_existing,
            totals.failed,
            duration
        );
    }
    let report = PlanReport {
        items_per_sec: totals.copied as f64 / duration.max(1e-9),
        mailboxes: reports,
        totals,
        failed_mailboxes,
        duration_secs: duration,
    };
    if let Some(path) = &args.report {
        write_report(path, &report)?;
    }
    // A failed mailbox makes the plan "finished with failures" (1), whatever its own cause.
    Ok(if worst == Exit::Ok {
        Exit::Ok
    } else {
        Exit::ItemsFailed
    })
}

fn default_run_args() -> RunArgs {
    RunArgs {
        state: None,
        jobs: 2,
        maps: Vec::new(),
        map_regexes: Vec::new(),
        includes: Vec::new(),
        excludes: Vec::new(),
        merge: false,
        since: None,
        before: None,
        max_size: None,
        bwlimit: None,
        max_msgs_per_sec: None,
        memory_budget: "128M".into(),
        dry_run: false,
        report: None,
        delete: false,
        max_delete_percent: 10.0,
        force: false,
        read_back: false,
        manifest: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_csv_with_header_and_relative_secret_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plan.csv");
        std::fs::write(&path, "source,target,source_password_file,target_password_file\nmbox:a.mbox,maildir:out/a\nimaps://u@h,maildir:out/u,pw/u,\n").expect("write");
        let plan = read_plan(&path).expect("plan");
        assert_eq!(plan.len(), 2);
        assert_eq!(
            plan[1].source_password_file.as_deref(),
            Some(dir.path().join("pw/u").as_path())
        );
        assert_eq!(plan[1].target_password_file, None);
    }

    #[test]
    fn refuses_unknown_toml_keys_and_empty_plans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plan.toml");
        std::fs::write(
            &path,
            "[[mailbox]]\nsource = \"mbox:a\"\ntarget = \"maildir:b\"\npassword = \"x\"\n",
        )
        .expect("write");
        assert!(read_plan(&path).is_err());
        std::fs::write(&path, "mailbox = []\n").expect("write");
        assert!(read_plan(&path).is_err());
    }
}
