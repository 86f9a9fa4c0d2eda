//! Progress display: indicatif bars on a terminal (the whole run plus one per active folder),
//! plain lines every few seconds otherwise (logs, CI). Both are fed by the copier's progress
//! events, so the display never slows the copy.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mailferry::core::{Counts, FolderPath, Progress};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// A running display; [`ProgressView::finish`] clears it.
pub struct ProgressView {
    task: Option<JoinHandle<()>>,
}

fn accounted(c: &Counts) -> u64 {
    c.copied + c.already_copied + c.skipped_existing + c.filtered + c.failed
}

impl ProgressView {
    /// Starts showing progress for a run over `total` items (`label` names the mailbox).
    pub fn start(
        mut events: broadcast::Receiver<Progress>,
        total: u64,
        label: String,
        quiet: bool,
    ) -> Self {
        if quiet {
            return ProgressView { task: None };
        }
        let terminal = std::io::stderr().is_terminal();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut totals = Counts::default();
            let multi = MultiProgress::with_draw_target(if terminal {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            });
            let style = ProgressStyle::with_template(
                "{prefix:>20!} [{bar:30}] {pos}/{len} {msg} ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            let overall = multi.add(ProgressBar::new(total));
            overall.set_style(style.clone());
            overall.set_prefix(label.clone());
            let mut folders: HashMap<FolderPath, ProgressBar> = HashMap::new();
            let mut last_line = Instant::now();
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                match event {
                    Progress::FolderStarted { folder, total, .. } => {
                        let bar = multi.insert_before(&overall, ProgressBar::new(total));
                        bar.set_style(style.clone());
                        bar.set_prefix(folder.to_string());
                        folders.insert(folder, bar);
                    }
                    Progress::Items { folder, delta } => {
                        totals.add(&delta);
                        let n = accounted(&delta);
                        overall.inc(n);
                        overall.set_message(format!("items, {:.1} MB", totals.bytes as f64 / 1e6));
                        if let Some(bar) = folders.get(&folder) {
                            bar.inc(n);
                        }
                        if !terminal && last_line.elapsed() >= Duration::from_secs(5) {
                            last_line = Instant::now();
                            let secs = started.elapsed().as_secs_f64().max(1e-3);
                            eprintln!(
                                "{label}: {}/{total} items ({} copied, {} failed), {:.1} MB, {:.0} items/s",
                                accounted(&totals),
                                totals.copied,
                                totals.failed,
                                totals.bytes as f64 / 1e6,
                                totals.copied as f64 / secs
                            );
                        }
                    }
                    Progress::FolderFinished { folder, .. } => {
                        if let Some(bar) = folders.remove(&folder) {
                            bar.finish_and_clear();
                            multi.remove(&bar);
                        }
                    }
                }
            }
            overall.finish_and_clear();
        });
        ProgressView { task: Some(task) }
    }

    /// Stops the display (call after the copier, which closes the event stream, is dropped).
    pub async fn finish(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}
