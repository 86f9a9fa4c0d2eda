//! `mailferry report REPORT.json… --html OUT.html`: one self-contained page a person opens
//! (a manager, an auditor, the team the morning after), made from the `--report` JSON files of
//! `copy`, `sync`, `verify` and `plan`.
//!
//! Design decisions, and why:
//! - **Reports are read as JSON values, not as the writer's types.** `MailboxReport` and
//!   `PlanReport` only serialise (they are the CLI's output contract), and a report written by an
//!   older or newer mailferry must still render: fields are only ever added, so every field is
//!   optional here and unknown ones are ignored. The typed parts that do deserialise (core's
//!   `Report`, `Verification`) are read as such.
//! - **A bad input is reported, never fatal to the others**: a file that cannot be read or is not
//!   a report is named with its reason on the page and on stderr, and the exit code is 1.
//! - **No script, no network, no font**: inline CSS and inline SVG only, so the page opens the
//!   same from a mail attachment, an archive or an air-gapped machine, and a report cannot make
//!   the browser fetch anything. Every string from a report is escaped ([`render::esc`]): folder
//!   names and error texts come from servers.
//! - **Throughput over time** is built from each folder's start (`started_unix`) and duration:
//!   a folder's copied items are spread evenly over its time. It is an average per folder, not a
//!   sampled rate, and the chart says so.

mod chart;
mod model;
mod render;

use std::path::Path;

use anyhow::anyhow;

use crate::args::ReportArgs;
use crate::{Exit, Failure};

pub use model::{Input, Page};

/// Reads every report, renders the page, writes it. Exit 1 if some input could not be read (the
/// page is still written and names it), 2 if none could.
pub fn run(args: ReportArgs) -> Result<Exit, Failure> {
    let mut page = Page::default();
    for path in &args.reports {
        match read_input(path) {
            Ok(input) => page.inputs.push(input),
            Err(reason) => {
                eprintln!("mailferry: report {}: {reason}", path.display());
                page.unreadable
                    .push((path.display().to_string(), reason.to_string()));
            }
        }
    }
    if page.inputs.is_empty() {
        return Err(Failure::usage(anyhow!(
            "no report could be read ({} given)",
            args.reports.len()
        )));
    }
    let html = render::page(&page);
    // Private, like the JSON reports it is made from: it names mailboxes and their errors.
    mailferry::access::write_private_file(&args.html, html.as_bytes())
        .map_err(|e| Failure::usage(anyhow!("cannot write {}: {e}", args.html.display())))?;
    Ok(if page.unreadable.is_empty() {
        Exit::Ok
    } else {
        Exit::ItemsFailed
    })
}

fn read_input(path: &Path) -> anyhow::Result<Input> {
    let text = std::fs::read(path).map_err(|e| anyhow!("cannot read it: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| anyhow!("not JSON: {e}"))?;
    let label = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Input::from_json(label, &value).map_err(|e| anyhow!(e))
}

#[cfg(test)]
mod tests;
