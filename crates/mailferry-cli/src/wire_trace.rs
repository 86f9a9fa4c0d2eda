//! `--trace-imap FILE`: one trace file per path for the whole process, so the source and target
//! sessions (and every pair of a plan) write to it together instead of truncating each other.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use mailferry::imap::WireTrace;

use crate::Failure;

static OPEN: Mutex<Option<HashMap<PathBuf, WireTrace>>> = Mutex::new(None);

/// The trace writing to `path` (created on first use), or `None` without a path.
pub fn open(path: Option<&Path>) -> Result<Option<WireTrace>, Failure> {
    let Some(path) = path else {
        return Ok(None);
    };
    // A poisoned lock only means another thread panicked while opening a trace.
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    let traces = open.get_or_insert_with(HashMap::new);
    if let Some(trace) = traces.get(path) {
        return Ok(Some(trace.clone()));
    }
    let trace = WireTrace::to_file(path)
        .with_context(|| format!("--trace-imap: cannot create {}", path.display()))
        .map_err(Failure::usage)?;
    traces.insert(path.to_path_buf(), trace.clone());
    Ok(Some(trace))
}
