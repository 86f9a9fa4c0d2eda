//! What the page shows, read from report JSON: inputs, mailboxes, totals, grouped incidents and
//! the throughput timeline. Rendering-free, so the figures are tested apart from the HTML.

use std::collections::HashMap;

use mailferry::core::{Counts, Report, Verification};
use serde_json::Value;

/// Everything on one page.
#[derive(Debug, Default)]
pub struct Page {
    /// The reports read.
    pub inputs: Vec<Input>,
    /// Files that could not be read: (path, reason).
    pub unreadable: Vec<(String, String)>,
}

/// One report file.
#[derive(Debug)]
pub struct Input {
    /// The file's name.
    pub label: String,
    /// `plan`, or the command of a single-pair report.
    pub kind: String,
    /// Wall-clock seconds of the whole run.
    pub duration_secs: f64,
    /// The mailboxes it reports.
    pub mailboxes: Vec<Mailbox>,
    /// Throttling data at the report's top level, if it carries any.
    pub throttled: Option<Value>,
}

/// One mailbox pair's outcome.
#[derive(Debug, Default)]
pub struct Mailbox {
    /// `copy`, `sync` or `verify`.
    pub command: String,
    /// Source endpoint.
    pub source: String,
    /// Target endpoint.
    pub target: String,
    /// `ok`, `items_failed`, `differ`, `error`, `dry_run`.
    pub outcome: String,
    /// The mailbox's exit code.
    pub exit_code: Option<u64>,
    /// Why the mailbox failed as a whole.
    pub error: Option<String>,
    /// Folders left out, with why.
    pub excluded: Vec<(String, String)>,
    /// Folder mapping conflicts.
    pub conflicts: Vec<String>,
    /// The copy's report.
    pub copy: Option<Report>,
    /// The verification.
    pub verification: Option<Verification>,
    /// Throttling data, if the report carries any.
    pub throttled: Option<Value>,
    /// The audit manifest the run wrote: (path, messages added, BLAKE3 of the file).
    pub manifest: Option<(String, u64, String)>,
    /// `verify --manifest`: differences as (target folder and key, what differs).
    pub manifest_differences: Vec<(String, String)>,
    /// Parts of this mailbox's report that could not be read, with why.
    pub problems: Vec<String>,
}

impl Input {
    /// Reads a `plan` report (`mailboxes`) or a `copy`/`sync`/`verify` report (`command`).
    pub fn from_json(label: String, v: &Value) -> Result<Input, String> {
        if let Some(list) = v.get("mailboxes").and_then(Value::as_array) {
            let mailboxes: Vec<Mailbox> = list.iter().map(Mailbox::from_json).collect();
            let duration_secs = v
                .get("duration_secs")
                .and_then(Value::as_f64)
                .unwrap_or_else(|| mailboxes.iter().map(Mailbox::duration_secs).sum());
            return Ok(Input {
                label,
                kind: "plan".into(),
                duration_secs,
                mailboxes,
                throttled: present(v.get("throttled")),
            });
        }
        if v.get("command").and_then(Value::as_str).is_some() {
            let mailbox = Mailbox::from_json(v);
            return Ok(Input {
                label,
                kind: mailbox.command.clone(),
                duration_secs: mailbox.duration_secs(),
                mailboxes: vec![mailbox],
                throttled: None,
            });
        }
        Err(
            "not a mailferry report: it has neither \"mailboxes\" (plan) nor \"command\" \
             (copy, sync, verify)"
                .into(),
        )
    }
}

/// A JSON value that says something (not absent, null, empty or zero).
fn present(v: Option<&Value>) -> Option<Value> {
    match v? {
        Value::Null | Value::Bool(false) => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Object(o) if o.is_empty() => None,
        Value::Number(n) if n.as_f64() == Some(0.0) => None,
        other => Some(other.clone()),
    }
}

fn text(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Mailbox {
    /// Reads one mailbox; a part that does not read is noted in `problems`, the rest is kept.
    pub fn from_json(v: &Value) -> Mailbox {
        let mut m = Mailbox {
            command: text(v, "command"),
            source: text(v, "source"),
            target: text(v, "target"),
            outcome: text(v, "outcome"),
            exit_code: v.get("exit_code").and_then(Value::as_u64),
            error: v.get("error").and_then(Value::as_str).map(str::to_string),
            ..Mailbox::default()
        };
        if let Some(list) = v.get("excluded_folders").and_then(Value::as_array) {
            for e in list {
                let pair = e.as_array();
                let at = |i: usize| {
                    pair.and_then(|p| p.get(i))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                m.excluded.push((at(0), at(1)));
            }
        }
        if let Some(list) = v.get("conflicts").and_then(Value::as_array) {
            m.conflicts = list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
        }
        if let Some(copy) = present(v.get("copy")) {
            match serde_json::from_value::<Report>(copy) {
                Ok(r) => m.copy = Some(r),
                Err(e) => m
                    .problems
                    .push(format!("its \"copy\" part does not read: {e}")),
            }
        }
        if let Some(ver) = present(v.get("verification")) {
            match serde_json::from_value::<Verification>(ver) {
                Ok(r) => m.verification = Some(r),
                Err(e) => m
                    .problems
                    .push(format!("its \"verification\" part does not read: {e}")),
            }
        }
        if let Some(man) = v.get("manifest").filter(|m| m.is_object()) {
            m.manifest = Some((
                text(man, "path"),
                man.get("entries").and_then(Value::as_u64).unwrap_or(0),
                text(man, "blake3"),
            ));
        }
        if let Some(list) = v
            .get("manifest_check")
            .and_then(|c| c.get("differences"))
            .and_then(Value::as_array)
        {
            for d in list {
                let folder = d
                    .get("folder")
                    .and_then(Value::as_array)
                    .map(|segments| {
                        segments
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .unwrap_or_default();
                m.manifest_differences.push((
                    format!("{folder} {}", text(d, "target_key")),
                    text(d, "detail"),
                ));
            }
        }
        m.throttled = present(v.get("throttled"))
            .or_else(|| present(v.get("copy").and_then(|c| c.get("throttled"))));
        m
    }

    /// The mailbox's name on the page: its source, as users know it.
    pub fn name(&self) -> &str {
        if self.source.is_empty() {
            &self.target
        } else {
            &self.source
        }
    }

    /// Seconds the copy took (0 when it did not run).
    pub fn duration_secs(&self) -> f64 {
        self.copy.as_ref().map_or(0.0, |c| c.duration_secs)
    }

    /// Counts of the copy (zero when it did not run).
    pub fn counts(&self) -> Counts {
        self.copy.as_ref().map(|c| c.totals).unwrap_or_default()
    }

    /// Whether the mailbox finished without any failure.
    pub fn is_ok(&self) -> bool {
        self.outcome == "ok" || self.outcome == "dry_run"
    }

    /// Short reasons for the table: why it failed or what is off.
    pub fn reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(e) = &self.error {
            out.push(e.clone());
        }
        if let Some(c) = &self.copy {
            if c.cancelled {
                out.push("cancelled before it finished".into());
            }
            for f in &c.folders {
                if let Some(e) = &f.error {
                    out.push(format!("folder {}: {e}", f.source));
                }
                if !f.failures.is_empty() {
                    let first = &f.failures[0];
                    out.push(format!(
                        "{} failed in {}, e.g. {}: {}",
                        f.failures.len(),
                        f.source,
                        first.key,
                        first.reason
                    ));
                }
            }
        }
        if let Some(v) = &self.verification {
            let mut n = [0usize; 6];
            for f in &v.folders {
                n[0] += f.missing.len();
                n[1] += f.extra.len();
                n[2] += f.changed.len();
                n[3] += f.rewritten_by_target.len();
                n[4] += f.flags.len();
                n[5] += f.dates.len();
            }
            let names = [
                "missing",
                "extra",
                "changed",
                "rewritten by the target",
                "flags differ",
                "dates differ",
            ];
            let parts: Vec<String> = n
                .iter()
                .zip(names)
                .filter(|(n, _)| **n > 0)
                .map(|(n, name)| format!("{n} {name}"))
                .collect();
            if !parts.is_empty() {
                out.push(format!("verify: {}", parts.join(", ")));
            }
        }
        if !self.manifest_differences.is_empty() {
            out.push(format!(
                "verify --manifest: {} difference{}, e.g. {}: {}",
                self.manifest_differences.len(),
                if self.manifest_differences.len() == 1 {
                    ""
                } else {
                    "s"
                },
                self.manifest_differences[0].0,
                self.manifest_differences[0].1
            ));
        }
        out.extend(self.conflicts.iter().cloned());
        out.extend(self.problems.iter().cloned());
        out
    }
}

impl Page {
    /// Every mailbox of every input, in input order.
    pub fn mailboxes(&self) -> impl Iterator<Item = &Mailbox> {
        self.inputs.iter().flat_map(|i| i.mailboxes.iter())
    }

    /// Counts over every mailbox.
    pub fn totals(&self) -> Counts {
        let mut t = Counts::default();
        for m in self.mailboxes() {
            t.add(&m.counts());
        }
        t
    }

    /// Wall-clock seconds over the inputs (inputs are separate runs, so they add up).
    pub fn duration_secs(&self) -> f64 {
        self.inputs.iter().map(|i| i.duration_secs).sum()
    }

    /// Throttling data, labelled by where it came from.
    pub fn throttled(&self) -> Vec<(String, &Value)> {
        let mut out = Vec::new();
        for i in &self.inputs {
            if let Some(t) = &i.throttled {
                out.push((format!("{} (whole run)", i.label), t));
            }
            for m in &i.mailboxes {
                if let Some(t) = &m.throttled {
                    out.push((m.name().to_string(), t));
                }
            }
        }
        out
    }
}

/// Something that went wrong, for grouping by cause.
#[derive(Debug, Clone)]
pub struct Incident {
    /// `item`, `transient`, `fatal`, `folder`, `mailbox`, `mapping`, `verify: missing`, ….
    pub kind: String,
    /// The reason as reported.
    pub reason: String,
    /// The mailbox.
    pub mailbox: String,
    /// Where in the mailbox (folder and item key), if known.
    pub place: String,
}

/// Incidents that share a cause.
#[derive(Debug)]
pub struct Group {
    /// The kind.
    pub kind: String,
    /// The cause: the reason with item keys and numbers taken out.
    pub cause: String,
    /// How many incidents.
    pub count: usize,
    /// How many distinct mailboxes.
    pub mailboxes: usize,
    /// A few of them.
    pub examples: Vec<Incident>,
}

/// Every failure, folder error, mailbox error, conflict and verify difference.
pub fn incidents(page: &Page) -> Vec<Incident> {
    let mut out = Vec::new();
    for m in page.mailboxes() {
        let mailbox = m.name().to_string();
        let mut push = |kind: String, reason: String, place: String| {
            out.push(Incident {
                kind,
                reason,
                mailbox: mailbox.clone(),
                place,
            })
        };
        if let Some(e) = &m.error {
            let kind = match m.exit_code {
                Some(2) => "mailbox: configuration",
                Some(3) => "mailbox: connection",
                _ => "mailbox",
            };
            push(kind.into(), e.clone(), String::new());
        }
        for c in &m.conflicts {
            push("mapping".into(), c.clone(), String::new());
        }
        for p in &m.problems {
            push("report".into(), p.clone(), String::new());
        }
        for (place, detail) in &m.manifest_differences {
            push("verify: manifest".into(), detail.clone(), place.clone());
        }
        if let Some(c) = &m.copy {
            for f in &c.folders {
                if let Some(e) = &f.error {
                    push("folder".into(), e.clone(), f.source.to_string());
                }
                for i in &f.failures {
                    let kind = i.kind.map_or("item".to_string(), |k| k.to_string());
                    push(kind, i.reason.clone(), format!("{} {}", f.source, i.key));
                }
            }
        }
        if let Some(v) = &m.verification {
            for f in &v.folders {
                let lists = [
                    ("verify: missing", &f.missing),
                    ("verify: extra", &f.extra),
                    ("verify: changed", &f.changed),
                    ("verify: rewritten by target", &f.rewritten_by_target),
                    ("verify: flags", &f.flags),
                    ("verify: dates", &f.dates),
                ];
                for (kind, list) in lists {
                    for d in list {
                        push(
                            kind.into(),
                            d.detail.clone(),
                            format!("{} {}", f.source, d.key),
                        );
                    }
                }
            }
        }
    }
    out
}

/// The cause of a reason: item keys (the last word of `place`) and digits taken out, so
/// "message 12 is 31 MB" and "message 40 is 26 MB" fall in one group.
pub fn cause(reason: &str, place: &str) -> String {
    let mut r = reason.to_string();
    if let Some(key) = place.rsplit(' ').next().filter(|k| k.len() > 2) {
        r = r.replace(key, "…");
    }
    let mut out = String::with_capacity(r.len());
    let mut in_digits = false;
    for ch in r.chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(ch);
        }
    }
    out
}

/// Incidents grouped by (kind, cause), largest group first.
pub fn group(incidents: &[Incident]) -> Vec<Group> {
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut boxes: Vec<Vec<String>> = Vec::new();
    for i in incidents {
        let key = (i.kind.clone(), cause(&i.reason, &i.place));
        let at = *index.entry(key.clone()).or_insert_with(|| {
            groups.push(Group {
                kind: key.0,
                cause: key.1,
                count: 0,
                mailboxes: 0,
                examples: Vec::new(),
            });
            boxes.push(Vec::new());
            groups.len() - 1
        });
        let g = &mut groups[at];
        g.count += 1;
        if g.examples.len() < 3 {
            g.examples.push(i.clone());
        }
        if !boxes[at].contains(&i.mailbox) {
            boxes[at].push(i.mailbox.clone());
        }
    }
    for (g, b) in groups.iter_mut().zip(&boxes) {
        g.mailboxes = b.len();
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.kind.cmp(&b.kind)));
    groups
}

/// Throughput over time: the start (Unix seconds), the width of a step (seconds) and items
/// copied per second in each step. `None` when no folder carries its start time (reports of
/// older versions) or nothing was copied.
pub fn timeline(page: &Page, steps: usize) -> Option<(f64, f64, Vec<f64>)> {
    let spans: Vec<(f64, f64, f64)> = page
        .mailboxes()
        .filter_map(|m| m.copy.as_ref())
        .flat_map(|c| c.folders.iter())
        .filter_map(|f| {
            let start = f.started_unix?;
            Some((
                start,
                start + f.duration_secs.max(0.0),
                f.counts.copied as f64,
            ))
        })
        .collect();
    let start = spans.iter().map(|s| s.0).reduce(f64::min)?;
    let end = spans.iter().map(|s| s.1).reduce(f64::max)?;
    if spans.iter().all(|s| s.2 == 0.0) || steps == 0 {
        return None;
    }
    let width = ((end - start) / steps as f64).max(1e-3);
    let mut items = vec![0.0; steps];
    for (s, e, n) in spans {
        let first = (((s - start) / width) as usize).min(steps - 1);
        if e - s <= 1e-9 {
            items[first] += n;
            continue;
        }
        let last = (((e - start) / width) as usize).min(steps - 1);
        for (i, slot) in items.iter_mut().enumerate().take(last + 1).skip(first) {
            let lo = start + i as f64 * width;
            let overlap = (e.min(lo + width) - s.max(lo)).max(0.0);
            *slot += n * overlap / (e - s);
        }
    }
    Some((start, width, items.into_iter().map(|n| n / width).collect()))
}
