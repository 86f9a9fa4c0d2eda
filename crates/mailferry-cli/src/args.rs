//! The command line's options: names and meanings are a contract scripts depend on.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mailferry::MigrationOptions;

/// The library's defaults: the flags default to them, so there is one place they live.
fn defaults() -> MigrationOptions {
    MigrationOptions::default()
}

/// Move mailboxes between IMAP servers, Maildir and mbox: fast, faithful, resumable.
///
/// Endpoints: imaps://USER@HOST[:PORT], imap://USER@HOST[:PORT][?tls=none],
/// maildir:PATH[?layout=fs|maildir++], mbox:PATH (a file, a .mbox.gz, or a directory).
/// Passwords come from MAILFERRY_SOURCE_PASSWORD / MAILFERRY_TARGET_PASSWORD, a password file,
/// an OAuth2 token command, or a prompt — never from the command line.
#[derive(Parser, Debug)]
#[command(name = "mailferry", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors; no progress.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Copy everything new from SOURCE to TARGET (resumable, exactly-once).
    Copy(PairArgs),
    /// Copy, then carry flag changes (and deletions with --delete).
    Sync(PairArgs),
    /// Compare SOURCE and TARGET (or TARGET and --manifest FILE); exit 0 only when they match.
    Verify(VerifyArgs),
    /// Show an endpoint's folder tree with counts, sizes and special-use roles.
    Folders(FoldersArgs),
    /// Run many mailbox pairs from a TOML or CSV plan.
    Plan(PlanArgs),
    /// Render --report JSON files (of copy, sync, verify or plan) as one HTML page.
    Report(ReportArgs),
}

/// How to reach and authenticate to endpoints.
#[derive(Args, Debug, Clone, Default)]
pub struct AccessArgs {
    /// File holding the source password (first line).
    #[arg(long, value_name = "FILE")]
    pub source_password_file: Option<PathBuf>,
    /// File holding the target password (first line).
    #[arg(long, value_name = "FILE")]
    pub target_password_file: Option<PathBuf>,
    /// Command printing a fresh OAuth2 access token for the source (run again when needed).
    #[arg(long, value_name = "COMMAND")]
    pub source_oauth2_command: Option<String>,
    /// Command printing a fresh OAuth2 access token for the target.
    #[arg(long, value_name = "COMMAND")]
    pub target_oauth2_command: Option<String>,
    /// Trust this CA certificate (PEM) in addition to the system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Do not verify TLS certificates (dangerous; for test servers only).
    #[arg(long)]
    pub insecure: bool,
    /// IMAP sessions per endpoint.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub connections: usize,
    /// Write every IMAP command and response to FILE (literals abbreviated, credentials
    /// redacted); -vvv logs the same lines.
    #[arg(long, value_name = "FILE")]
    pub trace_imap: Option<PathBuf>,
}

/// Options of copy, sync and verify.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// State database (default: one SQLite file per source/target pair under the user's data
    /// directory).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Folders copied at once.
    #[arg(long, value_name = "N", default_value_t = defaults().jobs)]
    pub jobs: usize,
    /// Rename a folder: OLD=NEW (paths with '/'), repeatable.
    #[arg(long = "map", value_name = "OLD=NEW")]
    pub maps: Vec<String>,
    /// Rename folders by regex: 'PATTERN=>REPLACEMENT' ($1 for captures), repeatable.
    #[arg(long = "map-regex", value_name = "PATTERN=>REPLACEMENT")]
    pub map_regexes: Vec<String>,
    /// Only folders whose path ('/'-separated) matches this regex, repeatable.
    #[arg(long = "include", value_name = "REGEX")]
    pub includes: Vec<String>,
    /// Skip folders whose path matches this regex, repeatable (wins over --include).
    #[arg(long = "exclude", value_name = "REGEX")]
    pub excludes: Vec<String>,
    /// Merge source folders that land on the same target folder instead of refusing.
    #[arg(long)]
    pub merge: bool,
    /// Only messages dated on or after this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Only messages dated before this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub before: Option<String>,
    /// Leave out messages larger than this (e.g. 25M); they are listed in the report.
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// Limit the bytes written per second (e.g. 10M).
    #[arg(long, value_name = "RATE")]
    pub bwlimit: Option<String>,
    /// Limit the messages written per second.
    #[arg(long, value_name = "N")]
    pub max_msgs_per_sec: Option<f64>,
    /// Memory budget for messages in flight (e.g. 256M).
    #[arg(long, value_name = "SIZE", default_value_t = defaults().memory_budget.to_string())]
    pub memory_budget: String,
    /// Print the folder plan and what would be copied; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// sync: delete target messages whose source message is gone.
    #[arg(long)]
    pub delete: bool,
    /// sync: refuse to delete more than this percentage of a folder.
    #[arg(long, value_name = "PERCENT", default_value_t = defaults().max_delete_percent)]
    pub max_delete_percent: f64,
    /// sync: delete even above --max-delete-percent.
    #[arg(long)]
    pub force: bool,
    /// verify: read both sides back and compare checksums.
    #[arg(long)]
    pub read_back: bool,
    /// copy, sync: write the audit manifest of every message copied to this file (gzip JSON
    /// lines; a re-run appends). verify: check TARGET against it, without the source.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct PairArgs {
    /// Where mail is read from.
    pub source: String,
    /// Where mail is written to.
    pub target: String,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// The Prometheus endpoint of copy, sync and plan.
#[derive(Args, Debug, Clone, Default)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics while the run goes on (e.g.
    /// 127.0.0.1:9898; port 0 picks a free one, printed on stderr).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// After the run, keep the endpoint up until one scrape has read the final figures, or at
    /// most this many seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 0,
        requires = "metrics_addr"
    )]
    pub metrics_linger: u64,
}

/// `verify SOURCE TARGET`, or `verify --manifest FILE TARGET`.
#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// SOURCE TARGET, or only TARGET with --manifest.
    #[arg(required = true, num_args = 1..=2, value_names = ["SOURCE", "TARGET"])]
    pub endpoints: Vec<String>,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug, Clone)]
pub struct FoldersArgs {
    /// The endpoint to list.
    pub endpoint: String,
    /// File holding the password.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Command printing a fresh OAuth2 access token.
    #[arg(long, value_name = "COMMAND")]
    pub oauth2_command: Option<String>,
    /// Trust this CA certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Do not verify TLS certificates.
    #[arg(long)]
    pub insecure: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// The plan: TOML ([[mailbox]] tables) or CSV (source,target[,source_password_file,target_password_file]).
    pub file: PathBuf,
    /// Mailboxes copied at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub jobs: usize,
    /// Directory for the per-mailbox state files (default: the user's data directory).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Write the JSON report of all mailboxes to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print each mailbox's folder plan; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Trust this CA certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Do not verify TLS certificates.
    #[arg(long)]
    pub insecure: bool,
    /// IMAP sessions per endpoint.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub connections: usize,
    /// Memory for messages in flight, shared by all the mailboxes running at once.
    #[arg(long, value_name = "SIZE", default_value_t = defaults().memory_budget.to_string())]
    pub memory_budget: String,
    /// Write each mailbox's audit manifest (gzip JSON lines) into this directory.
    #[arg(long, value_name = "DIR")]
    pub manifest_dir: Option<PathBuf>,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The --report JSON files of copy, sync, verify or plan runs.
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    /// Write one self-contained HTML page here (inline CSS and SVG, no script, no network).
    #[arg(long, value_name = "OUT.html")]
    pub html: PathBuf,
}
