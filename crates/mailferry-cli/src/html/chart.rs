//! Inline SVG charts: a horizontal bar per mailbox (duration) and an area chart (throughput over
//! time). Hand-written SVG rather than a charting library: two chart shapes do not justify a
//! dependency, and the output must stay script-free. Hover titles (`<title>`) give exact
//! figures without JavaScript.

use std::fmt::Write as _;

use super::render::{esc, human_secs};

/// One bar: label, value (seconds), CSS class (the outcome), tooltip.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub class: &'static str,
    pub title: String,
}

const WIDTH: f64 = 900.0;
const LABEL_W: f64 = 300.0;
const VALUE_W: f64 = 80.0;
const ROW_H: f64 = 20.0;

/// Bars sorted longest first, one row each.
pub fn duration_bars(mut bars: Vec<Bar>) -> String {
    bars.sort_by(|a, b| b.value.total_cmp(&a.value));
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1e-9);
    let height = ROW_H * bars.len() as f64 + 8.0;
    let plot = WIDTH - LABEL_W - VALUE_W;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" role="img" aria-label="duration per mailbox" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">"#
    );
    for (i, b) in bars.iter().enumerate() {
        let y = 4.0 + i as f64 * ROW_H;
        let w = (b.value / max * plot).max(1.0);
        let _ = write!(
            s,
            r#"<g><title>{title}</title><text x="{lx}" y="{ty}" text-anchor="end" class="lbl">{label}</text><rect x="{LABEL_W}" y="{ry}" width="{w:.1}" height="{rh}" class="bar {class}"/><text x="{vx:.1}" y="{ty}" class="val">{value}</text></g>"#,
            title = esc(&b.title),
            lx = LABEL_W - 8.0,
            ty = y + ROW_H * 0.7,
            label = esc(&shorten(&b.label, 38)),
            ry = y + 3.0,
            rh = ROW_H - 6.0,
            class = b.class,
            vx = LABEL_W + w + 6.0,
            value = esc(&human_secs(b.value)),
        );
    }
    s.push_str("</svg>");
    s
}

/// Items per second over time as an area, with its axes labelled.
pub fn throughput(step_secs: f64, rates: &[f64]) -> String {
    let (w, h) = (WIDTH, 240.0);
    let (left, right, top, bottom) = (70.0, 20.0, 12.0, 36.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = nice_ceiling(rates.iter().copied().fold(0.0, f64::max));
    let n = rates.len().max(1) as f64;
    let x = |i: f64| left + i / n * plot_w;
    let y = |r: f64| top + plot_h - r / max * plot_h;
    let mut points = format!("{:.1},{:.1}", x(0.0), y(0.0));
    for (i, r) in rates.iter().enumerate() {
        let _ = write!(
            points,
            " {:.1},{:.1} {:.1},{:.1}",
            x(i as f64),
            y(*r),
            x(i as f64 + 1.0),
            y(*r)
        );
    }
    let _ = write!(points, " {:.1},{:.1}", x(n), y(0.0));
    let total = step_secs * n;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" role="img" aria-label="throughput over time" viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">"#
    );
    for frac in [0.0, 0.5, 1.0] {
        let gy = y(max * frac);
        let _ = write!(
            s,
            r#"<line x1="{left}" x2="{x2}" y1="{gy:.1}" y2="{gy:.1}" class="grid"/><text x="{tx}" y="{ty:.1}" text-anchor="end" class="axis">{label}</text>"#,
            x2 = w - right,
            tx = left - 6.0,
            ty = gy + 4.0,
            label = esc(&format_rate(max * frac)),
        );
    }
    let _ = write!(s, r#"<polygon points="{points}" class="area"/>"#);
    for (frac, anchor) in [(0.0, "start"), (0.5, "middle"), (1.0, "end")] {
        let _ = write!(
            s,
            r#"<text x="{tx:.1}" y="{ty}" text-anchor="{anchor}" class="axis">{label}</text>"#,
            tx = left + frac * plot_w,
            ty = h - bottom + 18.0,
            label = esc(&human_secs(total * frac)),
        );
    }
    let _ = write!(
        s,
        r#"<text x="{tx}" y="{ty}" text-anchor="middle" class="axis">messages per second, over the run's wall-clock time</text>"#,
        tx = left + plot_w / 2.0,
        ty = h - 4.0,
    );
    s.push_str("</svg>");
    s
}

fn format_rate(r: f64) -> String {
    if r >= 100.0 || r == 0.0 {
        format!("{r:.0}/s")
    } else {
        format!("{r:.1}/s")
    }
}

/// 1, 2 or 5 times a power of ten, at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

/// At most `n` characters, with an ellipsis in the middle (both ends of an endpoint matter).
pub fn shorten(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return s.to_string();
    }
    let head: String = s.chars().take(n / 2).collect();
    let tail: String = s.chars().skip(count - (n - n / 2 - 1)).collect();
    format!("{head}…{tail}")
}
