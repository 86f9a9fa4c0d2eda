//! One mailbox pair from the command line: arguments and secrets into a [`MailboxSpec`], then
//! the library's engine ([`mailferry::mailbox`]) runs it; this module only renders progress, the
//! dry-run plan and the summary, and turns the report's exit code into the process's.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use mailferry::Endpoint;
use mailferry::MigrationOptions;
use mailferry::access::{Access, Credentials};
use mailferry::core::engine::{ByteSize, FilterOptions, MappingOptions};
use mailferry::core::layers::{LayerOptions, Metrics};
use mailferry::mailbox::{self, MailboxReport, MailboxSpec, Mode};
use serde::Serialize;

use crate::args::{AccessArgs, FoldersArgs, LogFormat, PairArgs, RunArgs};
use crate::metrics_http::Exporter;
use crate::progress::ProgressView;
use crate::secrets::{Credential, SecretSpec, Side};
use crate::{Exit, Failure, summary};

/// The process exit code a report stands for.
pub fn exit_of(report: &MailboxReport) -> Exit {
    match report.exit_code {
        0 => Exit::Ok,
        1 => Exit::ItemsFailed,
        2 => Exit::Usage,
        _ => Exit::Connection,
    }
}

/// The run's options from the command line's flags.
pub fn options(run: &RunArgs) -> Result<MigrationOptions, Failure> {
    let size = |s: &str| ByteSize::parse(s).map_err(|e| Failure::usage(anyhow!("{e}")));
    let options = MigrationOptions {
        jobs: run.jobs.max(1),
        memory_budget: size(&run.memory_budget)?,
        mapping: MappingOptions {
            rename: run.maps.clone(),
            rename_regex: run.map_regexes.clone(),
            include: run.includes.clone(),
            exclude: run.excludes.clone(),
            merge: run.merge,
        },
        filter: FilterOptions {
            since: run.since.clone(),
            before: run.before.clone(),
            max_size: run.max_size.as_deref().map(size).transpose()?,
        },
        layers: LayerOptions {
            max_msgs_per_sec: run.max_msgs_per_sec,
            max_bytes_per_sec: run.bwlimit.as_deref().map(size).transpose()?.map(|b| b.0),
            ..LayerOptions::default()
        },
        delete: run.delete,
        max_delete_percent: run.max_delete_percent,
        force: run.force,
        read_back: run.read_back,
        ..MigrationOptions::default()
    };
    options
        .validate()
        .map_err(|e| Failure::usage(anyhow!("{e}")))?;
    Ok(options)
}

/// Credentials for an endpoint: resolved only for IMAP (local stores need none, and a prompt
/// for them would be wrong).
pub fn credentials(url: &str, spec: &SecretSpec, side: Side) -> Result<Credentials, Failure> {
    let endpoint = Endpoint::parse(url).map_err(|e| Failure::usage(anyhow!("{e}")))?;
    if !matches!(endpoint, Endpoint::Imap { .. }) {
        return Ok(Credentials::None);
    }
    match spec
        .resolve(side, &endpoint.to_string())
        .map_err(Failure::usage)?
    {
        Credential::Password(p) => Ok(Credentials::Password(p.0)),
        Credential::OAuth2(cmd) => Ok(Credentials::OAuth2(cmd)),
    }
}

/// How to reach an endpoint, from the flags (fails only if `--trace-imap`'s file cannot be
/// created).
pub fn access(args: &AccessArgs, credentials: Credentials) -> Result<Access, Failure> {
    Ok(Access {
        credentials,
        ca_file: args.ca_file.clone(),
        insecure: args.insecure,
        connections: args.connections.max(1),
        wire_trace: crate::wire_trace::open(args.trace_imap.as_deref())?,
    })
}

/// The mailbox of `copy`/`sync`/`verify`, or the report of why it cannot be built.
fn spec(mode: Mode, args: &PairArgs) -> Result<MailboxSpec, Box<MailboxReport>> {
    let mut spec = MailboxSpec::new(&args.source, &args.target);
    let failed = |spec: &MailboxSpec, f: Failure| {
        let mut report = MailboxReport::new(mode, spec);
        report.outcome = "error".into();
        report.exit_code = f.exit as u8;
        report.error = Some(format!("{:#}", f.error));
        Box::new(report)
    };
    let secret = |file: &Option<std::path::PathBuf>, command: &Option<String>| SecretSpec {
        password_file: file.clone(),
        oauth2_command: command.clone(),
        password_env: None,
    };
    let built = (|| {
        spec.options = options(&args.run)?;
        let a = &args.access;
        let source = credentials(
            &args.source,
            &secret(&a.source_password_file, &a.source_oauth2_command),
            Side::Source,
        )?;
        let target = credentials(
            &args.target,
            &secret(&a.target_password_file, &a.target_oauth2_command),
            Side::Target,
        )?;
        spec.source_access = access(a, source)?;
        spec.target_access = access(a, target)?;
        spec.state = args.run.state.clone();
        spec.manifest = args.run.manifest.clone();
        spec.dry_run = args.run.dry_run;
        Ok::<_, Failure>(())
    })();
    match built {
        Ok(()) => Ok(spec),
        Err(f) => Err(failed(&spec, f)),
    }
}

async fn run_pair(
    mode: Mode,
    args: &PairArgs,
    quiet: bool,
    metrics: Option<Arc<Metrics>>,
) -> MailboxReport {
    // A mailbox that cannot start is counted here; one that runs, by the library.
    let not_started = |report: MailboxReport| {
        if let Some(m) = &metrics {
            m.mailbox_completed(&report.outcome);
        }
        report
    };
    let spec = match spec(mode, args) {
        Ok(spec) => spec,
        Err(report) => return not_started(*report),
    };
    let prepared = match mailbox::prepare(mode, &spec, None, metrics.clone()).await {
        Ok(prepared) => prepared,
        Err(report) => return not_started(report),
    };
    if spec.dry_run {
        println!("{}", prepared.plan);
        return prepared.dry_run();
    }
    let label = Endpoint::parse(&spec.source)
        .map(|e| short_label(&e))
        .unwrap_or_default();
    let view = ProgressView::start(
        prepared.migration.progress(),
        prepared.plan.total_items(),
        label,
        quiet || mode == Mode::Verify,
    );
    let cancel = prepared.migration.cancel_token();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "mailferry: interrupted; finishing the batches in flight (state is kept, re-run to resume)"
            );
            cancel.cancel();
        }
    });
    let report = prepared.run().await;
    ctrl_c.abort();
    view.finish().await;
    if let Some(warning) = report
        .target_rewrites
        .as_ref()
        .and_then(|c| crate::rewrites::warning(c, &report.source, &report.target))
    {
        // A warning is shown even with -q: the user believes the copy is faithful.
        eprintln!("mailferry: {warning}");
    }
    if !quiet {
        if let Some(copied) = &report.copy {
            print!("{}", summary::copy_table(copied));
        }
        if let Some(synced) = &report.sync {
            let flags: u64 = synced.iter().map(|s| s.flags_updated).sum();
            let deleted: u64 = synced.iter().map(|s| s.deleted).sum();
            for s in synced {
                if let Some(why) = &s.refused {
                    eprintln!("mailferry: {why}");
                }
            }
            println!("sync: {flags} flag changes carried, {deleted} messages deleted");
        }
        if let Some(v) = &report.verification {
            print!("{}", summary::verify_table(v));
        }
    }
    report
}

/// A mailbox's short name for progress displays: the user, or the file's name.
pub fn short_label(e: &Endpoint) -> String {
    match e {
        Endpoint::Imap { user, .. } => user.clone(),
        Endpoint::Maildir { path, .. } | Endpoint::Mbox { path } => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string()),
    }
}

/// Writes a report as JSON, created private.
pub fn write_report(path: &Path, value: &impl Serialize) -> Result<(), Failure> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| Failure::usage(anyhow!(e)))?;
    mailferry::access::write_private_file(path, &json)
        .with_context(|| format!("cannot write the report {}", path.display()))
        .map_err(Failure::usage)
}

/// `copy`, `sync`, `verify`.
pub async fn run(
    mode: Mode,
    args: PairArgs,
    quiet: bool,
    format: LogFormat,
) -> Result<Exit, Failure> {
    let exporter = Exporter::start(&args.metrics, format).await?;
    let report = run_pair(mode, &args, quiet, exporter.as_ref().map(Exporter::metrics)).await;
    let written = match &args.run.report {
        Some(path) => write_report(path, &report),
        None => Ok(()),
    };
    // After the report: a final scrape and the report agree.
    if let Some(exporter) = exporter {
        exporter.finish().await;
    }
    written?;
    if let Some(e) = &report.error {
        return Err(Failure {
            exit: exit_of(&report),
            error: anyhow!("{e}"),
        });
    }
    Ok(exit_of(&report))
}

/// Opens one endpoint on its own (`folders`, `verify --manifest`): a failure is a connection
/// failure for IMAP (or a transient one), a usage error otherwise.
pub async fn open_one(
    endpoint: &Endpoint,
    access: &Access,
) -> Result<mailferry::access::Store, Failure> {
    mailferry::access::open(endpoint, access, false)
        .await
        .map_err(|e| {
            let err = anyhow!("{endpoint}: {e}");
            if matches!(endpoint, Endpoint::Imap { .. }) || e.is_transient() {
                Failure::connection(err)
            } else {
                Failure::usage(err)
            }
        })
}

/// `folders`: the tree with counts, sizes and roles.
pub async fn folders(args: FoldersArgs) -> Result<Exit, Failure> {
    let endpoint = Endpoint::parse(&args.endpoint).map_err(Failure::usage)?;
    let secret = SecretSpec {
        password_file: args.password_file.clone(),
        oauth2_command: args.oauth2_command.clone(),
        password_env: None,
    };
    let cred = credentials(&args.endpoint, &secret, Side::Source)?;
    let access_args = AccessArgs {
        ca_file: args.ca_file.clone(),
        insecure: args.insecure,
        connections: 1,
        ..AccessArgs::default()
    };
    let store = open_one(&endpoint, &access(&access_args, cred)?).await?;
    let mut folders = store
        .source
        .list_folders()
        .await
        .map_err(|e| Failure::connection(anyhow!("{endpoint}: {e}")))?;
    folders.sort_by(|a, b| a.path.cmp(&b.path));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&folders).map_err(|e| Failure::usage(anyhow!(e)))?
        );
        return Ok(Exit::Ok);
    }
    println!("{:<40} {:>8} {:>10}  role", "folder", "messages", "MB");
    for f in &folders {
        let indent = "  ".repeat(f.path.depth().saturating_sub(1));
        let name = format!("{indent}{}", f.path.name().unwrap_or(""));
        let size = f
            .status
            .size
            .map_or("-".to_string(), |s| format!("{:.1}", s as f64 / 1e6));
        let role = f.special_use.map(|r| r.as_imap()).unwrap_or("");
        let count = if f.selectable {
            f.status.count.to_string()
        } else {
            "-".into()
        };
        println!("{name:<40} {count:>8} {size:>10}  {role}");
    }
    Ok(Exit::Ok)
}
