//! The command line's side of audit manifests (`mailferry::manifest`): `--manifest FILE` on
//! `copy`/`sync` (and `--manifest-dir` on `plan`, named by [`plan_manifest_path`]) is passed to
//! the library's mailbox runner, which records every copied message; `verify --manifest FILE
//! TARGET` re-checks a target against a manifest without the source.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use mailferry::Endpoint;
use mailferry::mailbox::Mode;
use mailferry::manifest::ManifestCheck;
use serde::Serialize;

use crate::args::{PairArgs, VerifyArgs};
use crate::pair;
use crate::secrets::{SecretSpec, Side};
use crate::{Exit, Failure};

/// `DIR/<source, made a file name>-<hash of the pair>.manifest.jsonl.gz`: readable (an
/// auditor looks for a user), and distinct for two pairs from one source.
pub fn plan_manifest_path(dir: &Path, source: &str, target: &str) -> PathBuf {
    let readable: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@.-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    // FNV-1a, as for state file names: stable across versions.
    let hash = format!("{source} -> {target}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    dir.join(format!(
        "{readable}-{:08x}.manifest.jsonl.gz",
        hash & 0xffff_ffff
    ))
}

/// The `--report` JSON of `verify --manifest` (a contract: fields are only ever added).
#[derive(Debug, Serialize)]
struct ManifestVerifyReport {
    command: &'static str,
    target: String,
    /// "ok", "differ" or "error".
    outcome: &'static str,
    exit_code: u8,
    error: Option<String>,
    manifest_check: Option<ManifestCheck>,
}

/// `verify`: against the source, or with `--manifest` against a manifest.
pub async fn verify(args: VerifyArgs, quiet: bool) -> Result<Exit, Failure> {
    let VerifyArgs {
        mut endpoints,
        access,
        run,
    } = args;
    let Some(manifest) = run.manifest.clone() else {
        if endpoints.len() != 2 {
            return Err(Failure::usage(anyhow!(
                "verify needs SOURCE and TARGET (or --manifest FILE TARGET)"
            )));
        }
        let target = endpoints.pop().unwrap_or_default();
        let source = endpoints.pop().unwrap_or_default();
        let pair_args = PairArgs {
            source,
            target,
            access,
            run,
            // verify serves no metrics: nothing is copied.
            metrics: crate::args::MetricsArgs::default(),
        };
        return pair::run(Mode::Verify, pair_args, quiet, crate::args::LogFormat::Text).await;
    };
    let [target] = &endpoints[..] else {
        return Err(Failure::usage(anyhow!(
            "verify --manifest FILE checks one TARGET, without the source: give only TARGET"
        )));
    };
    let outcome = check(target, &manifest, &access).await;
    let report = match &outcome {
        Ok(c) => ManifestVerifyReport {
            command: "verify",
            target: target.clone(),
            outcome: if c.is_match() { "ok" } else { "differ" },
            exit_code: if c.is_match() {
                Exit::Ok as u8
            } else {
                Exit::ItemsFailed as u8
            },
            error: None,
            manifest_check: Some(c.clone()),
        },
        Err(f) => ManifestVerifyReport {
            command: "verify",
            target: target.clone(),
            outcome: "error",
            exit_code: f.exit as u8,
            error: Some(format!("{:#}", f.error)),
            manifest_check: None,
        },
    };
    if let Some(path) = &run.report {
        pair::write_report(path, &report)?;
    }
    let check = outcome?;
    for d in &check.differences {
        println!(
            "differ: {} {} (from {}): {}",
            d.folder, d.target_key, d.source, d.detail
        );
    }
    if !quiet {
        println!(
            "manifest {} (blake3 {}): {} in {} from {}{}: {}",
            check.manifest.display(),
            check.blake3,
            plural(check.entries, "message"),
            plural(check.folders as u64, "folder"),
            plural(check.runs as u64, "run"),
            if check.torn {
                "; it ends inside a run that was interrupted (its complete lines were checked)"
            } else {
                ""
            },
            if check.is_match() {
                "the target matches".to_string()
            } else {
                plural(check.differences.len() as u64, "difference")
            }
        );
    }
    Ok(if check.is_match() {
        Exit::Ok
    } else {
        Exit::ItemsFailed
    })
}

fn plural(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

async fn check(
    target: &str,
    manifest: &Path,
    access: &crate::args::AccessArgs,
) -> Result<ManifestCheck, Failure> {
    // A missing or unreadable manifest is a usage error, found before any connection is made.
    std::fs::File::open(manifest)
        .map_err(|e| Failure::usage(anyhow!("manifest {}: {e}", manifest.display())))?;
    let endpoint = Endpoint::parse(target).map_err(Failure::usage)?;
    let secret = SecretSpec {
        password_file: access.target_password_file.clone(),
        oauth2_command: access.target_oauth2_command.clone(),
        password_env: None,
    };
    let credentials = pair::credentials(target, &secret, Side::Target)?;
    let store = pair::open_one(&endpoint, &pair::access(access, credentials)?).await?;
    mailferry::manifest::check(&*store.target, manifest)
        .await
        .map_err(|e| {
            let err = anyhow!("{endpoint}: {e}");
            if e.is_fatal() {
                Failure::usage(err)
            } else {
                Failure::connection(err)
            }
        })
}
