//! The page's HTML. Every string that comes from a report goes through [`esc`]; the only markup
//! is written here. Figures carry stable `id`s (`total-copied`, …) so tests and scrapers can
//! find them without parsing the layout.

use std::fmt::Write as _;

use serde_json::Value;

use super::chart::{self, Bar};
use super::model::{self, Mailbox, Page};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and newline are not allowed in HTML text.
            c if c.is_control() && c != '\t' && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `0.4 s`, `12 s`, `3 min 20 s`, `2 h 05 min`.
pub fn human_secs(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "-".into();
    }
    if s < 10.0 {
        return format!("{s:.1} s");
    }
    let whole = s.round() as u64;
    match whole {
        0..=59 => format!("{whole} s"),
        60..=3599 => format!("{} min {:02} s", whole / 60, whole % 60),
        _ => format!("{} h {:02} min", whole / 3600, (whole % 3600) / 60),
    }
}

/// `1 group`, `3 groups`.
fn plural(n: usize, noun: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{} {noun}{s}", thousands(n as u64))
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2433;background:#f5f6f8}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 10px;border-bottom:1px solid #d8dce3;padding-bottom:4px}
.sub{color:#5b6475;margin:0 0 16px;font-size:14px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #d8dce3;border-radius:8px;padding:10px 14px;min-width:120px}
.card .n{font-size:24px;font-weight:600;display:block}.card .k{font-size:12px;color:#5b6475;text-transform:uppercase;letter-spacing:.04em}
.card.bad .n{color:#b42318}.card.good .n{color:#1a7f37}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid #d8dce3;padding:5px 7px;text-align:left;vertical-align:top}
td{overflow-wrap:anywhere}th,td.num{white-space:nowrap}
th{background:#eef0f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;white-space:nowrap;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600;color:#fff}
.ok{background:#1a7f37;fill:#1a7f37}.items_failed,.differ{background:#b7791f;fill:#d69e2e}.error{background:#b42318;fill:#d14343}.dry_run,.other{background:#6b7280;fill:#9ca3af}
.reasons{margin:0;padding-left:16px;color:#5b1f1a}
.chart{background:#fff;border:1px solid #d8dce3;border-radius:8px;width:100%;height:auto}
.chart .lbl,.chart .val,.chart .axis{font-size:12px;fill:#1d2433}.chart .grid{stroke:#e3e6eb}.chart .area{fill:#3b82f6;fill-opacity:.35;stroke:#1d4ed8;stroke-width:1.2}
.note{color:#5b6475;font-size:13px}
details summary{cursor:pointer;color:#1d4ed8}
code{font-size:12px}
"#;

/// The whole page.
pub fn page(p: &Page) -> String {
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    s.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
    );
    s.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    let _ = write!(
        s,
        "<title>mailferry report: {}</title><style>{STYLE}</style></head><body><main>",
        esc(&input_names(p))
    );
    s.push_str("<h1>mailferry migration report</h1>");
    let _ = write!(s, "<p class=\"sub\">From {}</p>", esc(&input_names(p)));
    totals(&mut s, p);
    throughput(&mut s, p);
    durations(&mut s, p);
    errors(&mut s, p);
    throttled(&mut s, p);
    mailboxes(&mut s, p);
    if !p.unreadable.is_empty() {
        s.push_str("<h2 id=\"unreadable\">Reports that could not be read</h2><ul>");
        for (path, why) in &p.unreadable {
            let _ = write!(s, "<li><code>{}</code>: {}</li>", esc(path), esc(why));
        }
        s.push_str("</ul>");
    }
    s.push_str("<p class=\"note\">Written by mailferry report. Self-contained: no script, nothing loaded from the network.</p>");
    s.push_str("</main></body></html>\n");
    s
}

fn input_names(p: &Page) -> String {
    p.inputs
        .iter()
        .map(|i| format!("{} ({}, {} mailboxes)", i.label, i.kind, i.mailboxes.len()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn outcome_class(m: &Mailbox) -> &'static str {
    match m.outcome.as_str() {
        "ok" => "ok",
        "items_failed" => "items_failed",
        "differ" => "differ",
        "error" => "error",
        "dry_run" => "dry_run",
        _ => "other",
    }
}

fn card(s: &mut String, id: &str, value: &str, label: &str, class: &str) {
    let _ = write!(
        s,
        "<div class=\"card {class}\"><span class=\"n\" id=\"{id}\">{}</span><span class=\"k\">{}</span></div>",
        esc(value),
        esc(label)
    );
}

fn totals(s: &mut String, p: &Page) {
    let t = p.totals();
    let all = p.mailboxes().count();
    let failed = p.mailboxes().filter(|m| !m.is_ok()).count();
    let secs = p.duration_secs();
    s.push_str("<h2>Totals</h2><div class=\"cards\">");
    card(
        s,
        "total-mailboxes",
        &thousands(all as u64),
        "mailboxes",
        "",
    );
    card(
        s,
        "total-mailboxes-ok",
        &thousands((all - failed) as u64),
        "mailboxes ok",
        "good",
    );
    let bad = if failed > 0 { "bad" } else { "" };
    card(
        s,
        "total-mailboxes-failed",
        &thousands(failed as u64),
        "mailboxes not ok",
        bad,
    );
    card(s, "total-seen", &thousands(t.seen), "messages seen", "");
    card(s, "total-copied", &thousands(t.copied), "copied", "good");
    card(
        s,
        "total-already",
        &thousands(t.already_copied),
        "copied before",
        "",
    );
    card(
        s,
        "total-existing",
        &thousands(t.skipped_existing),
        "found in target",
        "",
    );
    card(
        s,
        "total-filtered",
        &thousands(t.filtered),
        "filtered out",
        "",
    );
    let bad = if t.failed > 0 { "bad" } else { "" };
    card(s, "total-failed", &thousands(t.failed), "failed", bad);
    card(s, "total-bytes", &megabytes(t.bytes), "written", "");
    card(s, "total-duration", &human_secs(secs), "wall clock", "");
    let rate = t.copied as f64 / secs.max(1e-9);
    card(
        s,
        "total-rate",
        &format!("{rate:.0}/s"),
        "messages per second",
        "",
    );
    s.push_str("</div>");
}

fn throughput(s: &mut String, p: &Page) {
    s.push_str("<h2>Throughput over time</h2>");
    match model::timeline(p, 60) {
        Some((_, step, rates)) => {
            s.push_str(&chart::throughput(step, &rates));
            s.push_str("<p class=\"note\">Each folder's copied messages are spread evenly over the time it took; the chart stacks all folders of all mailboxes.</p>");
        }
        None => s.push_str("<p class=\"note\">Nothing to chart: no message was copied, or the reports predate per-folder start times.</p>"),
    }
}

fn durations(s: &mut String, p: &Page) {
    s.push_str("<h2>Duration per mailbox</h2>");
    let bars: Vec<Bar> = p
        .mailboxes()
        .map(|m| Bar {
            label: m.name().to_string(),
            value: m.duration_secs(),
            class: outcome_class(m),
            title: format!(
                "{} → {}: {}, {} copied, {}",
                m.source,
                m.target,
                m.outcome,
                m.counts().copied,
                human_secs(m.duration_secs())
            ),
        })
        .collect();
    if bars.is_empty() {
        s.push_str("<p class=\"note\">No mailbox.</p>");
    } else {
        s.push_str(&chart::duration_bars(bars));
    }
}

fn errors(s: &mut String, p: &Page) {
    s.push_str("<h2 id=\"errors\">Top errors by cause</h2>");
    let incidents = model::incidents(p);
    if incidents.is_empty() {
        s.push_str("<p class=\"note\" id=\"no-errors\">No errors: every message of every mailbox was accounted for.</p>");
        return;
    }
    let groups = model::group(&incidents);
    let _ = write!(
        s,
        "<p class=\"note\">{} in {}.</p>",
        plural(incidents.len(), "incident"),
        plural(groups.len(), "group")
    );
    s.push_str("<table><tr><th>count</th><th>kind</th><th>cause</th><th>mailboxes</th><th>examples</th></tr>");
    for g in groups.iter().take(25) {
        let _ = write!(
            s,
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td><ul class=\"reasons\">",
            thousands(g.count as u64),
            esc(&g.kind),
            esc(&g.cause),
            g.mailboxes
        );
        for e in &g.examples {
            let _ = write!(
                s,
                "<li>{} {}: {}</li>",
                esc(&e.mailbox),
                esc(&e.place),
                esc(&e.reason)
            );
        }
        s.push_str("</ul></td></tr>");
    }
    s.push_str("</table>");
    if groups.len() > 25 {
        let _ = write!(
            s,
            "<p class=\"note\">{} more groups in the JSON reports.</p>",
            groups.len() - 25
        );
    }
}

fn throttled(s: &mut String, p: &Page) {
    s.push_str("<h2 id=\"throttled\">Throttling</h2>");
    let list = p.throttled();
    if list.is_empty() {
        s.push_str("<p class=\"note\">These reports carry no throttling data.</p>");
        return;
    }
    s.push_str("<table><tr><th>where</th><th>what was throttled</th></tr>");
    for (place, value) in list {
        let _ = write!(s, "<tr><td>{}</td><td>", esc(&place));
        json_value(s, value);
        s.push_str("</td></tr>");
    }
    s.push_str("</table>");
}

/// Any JSON as nested tables: the throttling data's shape is not fixed yet, so it is shown as
/// it is rather than guessed at.
fn json_value(s: &mut String, v: &Value) {
    match v {
        Value::Array(items) if items.iter().all(Value::is_object) => {
            let mut columns: Vec<&String> = Vec::new();
            for item in items {
                if let Some(o) = item.as_object() {
                    for k in o.keys() {
                        if !columns.contains(&k) {
                            columns.push(k);
                        }
                    }
                }
            }
            s.push_str("<table><tr>");
            for c in &columns {
                let _ = write!(s, "<th>{}</th>", esc(c));
            }
            s.push_str("</tr>");
            for item in items {
                s.push_str("<tr>");
                for c in &columns {
                    s.push_str("<td>");
                    if let Some(x) = item.get(c.as_str()) {
                        json_value(s, x);
                    }
                    s.push_str("</td>");
                }
                s.push_str("</tr>");
            }
            s.push_str("</table>");
        }
        Value::Array(items) => {
            s.push_str("<ul class=\"reasons\">");
            for x in items {
                s.push_str("<li>");
                json_value(s, x);
                s.push_str("</li>");
            }
            s.push_str("</ul>");
        }
        Value::Object(o) => {
            s.push_str("<table>");
            for (k, x) in o {
                let _ = write!(s, "<tr><th>{}</th><td>", esc(k));
                json_value(s, x);
                s.push_str("</td></tr>");
            }
            s.push_str("</table>");
        }
        Value::String(t) => s.push_str(&esc(t)),
        other => s.push_str(&esc(&other.to_string())),
    }
}

fn mailboxes(s: &mut String, p: &Page) {
    s.push_str("<h2 id=\"mailboxes\">Mailboxes</h2>");
    s.push_str("<table id=\"mailbox-table\"><tr><th>#</th><th>source → target</th><th>outcome</th><th>copied</th><th>failed</th><th>MB</th><th>duration</th><th>reasons</th></tr>");
    for (n, m) in p.mailboxes().enumerate() {
        let c = m.counts();
        let _ = write!(
            s,
            "<tr><td class=\"num\">{}</td><td>{}<br>→ {}</td><td><span class=\"badge {}\">{}</span></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td><td class=\"num\">{}</td><td>",
            n + 1,
            esc(&m.source),
            esc(&m.target),
            outcome_class(m),
            esc(if m.outcome.is_empty() {
                "?"
            } else {
                &m.outcome
            }),
            thousands(c.copied),
            thousands(c.failed),
            c.bytes as f64 / 1e6,
            esc(&human_secs(m.duration_secs())),
        );
        let reasons = m.reasons();
        if !reasons.is_empty() {
            s.push_str("<ul class=\"reasons\">");
            for r in &reasons {
                let _ = write!(s, "<li>{}</li>", esc(r));
            }
            s.push_str("</ul>");
        }
        if let Some((path, entries, digest)) = &m.manifest {
            let _ = write!(
                s,
                "<p class=\"note\">audit manifest <code>{}</code>: {} messages, BLAKE3 <code>{}</code></p>",
                esc(path),
                thousands(*entries),
                esc(digest)
            );
        }
        folders(s, m);
        s.push_str("</td></tr>");
    }
    s.push_str("</table>");
}

fn folders(s: &mut String, m: &Mailbox) {
    let Some(copy) = &m.copy else { return };
    if copy.folders.is_empty() {
        return;
    }
    let _ = write!(
        s,
        "<details><summary>{} folder{}</summary><table><tr><th>source folder</th><th>target folder</th><th>seen</th><th>copied</th><th>before</th><th>existing</th><th>filtered</th><th>failed</th><th>time</th></tr>",
        copy.folders.len(),
        if copy.folders.len() == 1 { "" } else { "s" }
    );
    for f in &copy.folders {
        let c = f.counts;
        let _ = write!(
            s,
            "<tr><td>{}{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&f.source.to_string()),
            if f.unchanged { " (unchanged)" } else { "" },
            esc(&f.target.to_string()),
            thousands(c.seen),
            thousands(c.copied),
            thousands(c.already_copied),
            thousands(c.skipped_existing),
            thousands(c.filtered),
            thousands(c.failed),
            esc(&human_secs(f.duration_secs)),
        );
    }
    s.push_str("</table>");
    for (folder, why) in &m.excluded {
        let _ = write!(
            s,
            "<p class=\"note\">left out: {}: {}</p>",
            esc(folder),
            esc(why)
        );
    }
    s.push_str("</details>");
}
