//! How the reports print what was measured: a figure that could not be measured prints as
//! "n/a", never as 0, and MB is 10^6 bytes everywhere.

/// A figure with `digits` decimals, or `n/a` when unknown.
pub fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |x| format!("{x:.digits$}"))
}

/// A rate with sensible precision: no decimals from 100 up, one below.
pub fn rate(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// An exit code, or `signal` when the process was killed.
pub fn exit_code(code: Option<i32>) -> String {
    code.map_or_else(|| "signal".into(), |c| c.to_string())
}

/// A multi-line tool output as one line (for a note).
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Each line as a markdown list item (`- line`), one per line.
pub fn bullets(lines: &[String]) -> String {
    lines.iter().map(|line| format!("- {line}\n")).collect()
}

/// The "Notes:" section listing `notes`, after a blank line; empty when there are none.
pub fn notes_section(notes: &[String]) -> String {
    if notes.is_empty() {
        return String::new();
    }
    format!("\nNotes:\n{}", bullets(notes))
}
