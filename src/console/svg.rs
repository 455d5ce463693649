//! Charts drawn on the server as small inline SVG: a progress bar (received, matched on top
//! of it, pledged-but-not-received pale, the target marked) and a bar chart of pledges per
//! week with its axis labels.
//!
//! Written by hand: no chart crate renders a bar this small server-side without pulling a
//! plotting stack (fonts, rasterisers, a layout engine) into a gateway binary, and the whole
//! of what the console needs is a few `<rect>`s and `<text>`s. Every text that goes in is
//! escaped here ([`escape`]); every chart is `<svg role="img">` with an `aria-label` stating
//! its figures, and each part carries a `<title>` (a tooltip, and what a screen reader
//! reads). Colours come from classes in `console.css` (no `style` attribute: the CSP).

use std::fmt::{self, Write};

use rust_decimal::{prelude::ToPrimitive, Decimal};

/// An SVG element built here from escaped text: askama puts it in a page as it is
/// ([`askama::filters::HtmlSafe`]), where any other value is escaped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Svg(String);

impl Svg {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Svg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl askama::filters::HtmlSafe for Svg {}

/// `text` safe in SVG (XML) text and in a double- or single-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The parts of a progress bar, in money of one currency, with their texts (already in the
/// reader's language).
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub received: Decimal,
    pub matched: Decimal,
    /// Pledged and not yet received.
    pub outstanding: Decimal,
    pub target: Decimal,
    /// The whole bar's description (`aria-label`).
    pub label: &'a str,
    /// The `<title>` of each part: received, matched, outstanding, target.
    pub titles: [&'a str; 4],
}

/// The bar's width in viewBox units.
const BAR_WIDTH: f64 = 1000.0;

/// A horizontal bar as wide as its container: received, then matched on top of it (their
/// sum is the matched total), then the pledges still to come in, pale; the target is the
/// full width, or a mark when the figures go past it.
pub fn progress(p: &Progress<'_>) -> Svg {
    let parts = [p.received, p.matched, p.outstanding].map(non_negative);
    let sum: Decimal = parts.iter().sum();
    let target = non_negative(p.target);
    let scale = if sum > target { sum } else { target };
    let width = |x: Decimal| -> f64 {
        if scale.is_zero() {
            0.0
        } else {
            ((x / scale).to_f64().unwrap_or(0.0) * BAR_WIDTH).clamp(0.0, BAR_WIDTH)
        }
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="progress" role="img" aria-label="{}" viewBox="0 0 {BAR_WIDTH} 20" preserveAspectRatio="none" width="100%" height="20" focusable="false">"#,
        escape(p.label)
    );
    let _ = write!(
        s,
        r#"<rect class="track" x="0" y="0" width="{BAR_WIDTH}" height="20"><title>{}</title></rect>"#,
        escape(p.titles[3])
    );
    let mut x = 0.0;
    for (i, class) in ["received", "matched", "outstanding"]
        .into_iter()
        .enumerate()
    {
        let w = width(parts[i]);
        if w > 0.0 {
            let _ = write!(
                s,
                r#"<rect class="{class}" x="{:.1}" y="0" width="{:.1}" height="20"><title>{}</title></rect>"#,
                x,
                w,
                escape(p.titles[i])
            );
        }
        x += w;
    }
    if scale > target && !target.is_zero() {
        let _ = write!(
            s,
            r#"<rect class="target" x="{:.1}" y="0" width="4" height="20"><title>{}</title></rect>"#,
            (width(target) - 4.0).max(0.0),
            escape(p.titles[3])
        );
    }
    s.push_str("</svg>");
    Svg(s)
}

fn non_negative(x: Decimal) -> Decimal {
    if x.is_sign_negative() {
        Decimal::ZERO
    } else {
        x
    }
}

/// One bar of a bar chart, its texts already in the reader's language.
#[derive(Debug, Clone)]
pub struct Column {
    pub value: i64,
    /// Under the bar (a short date); empty for none.
    pub label: String,
    /// The bar's `<title>`.
    pub title: String,
}

/// A whole number for an axis, in the reader's digits (`Tr::int`).
pub type FormatInt<'a> = &'a dyn Fn(i64) -> String;

/// The chart's size in viewBox units: about a phone's width, so that its 13-unit texts stay
/// readable when it is drawn 330 px wide (and `console.css` caps it at 26rem).
const CHART_W: f64 = 360.0;
const CHART_H: f64 = 220.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 22.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 28.0;

/// A vertical bar chart (pledges per week): a y axis from 0 with three grid lines labelled
/// by `int`, one bar per column with its label under it and its `<title>`. `label` is the
/// chart's `aria-label`, `axis` the y axis's caption.
pub fn columns(columns: &[Column], label: &str, axis: &str, int: FormatInt<'_>) -> Svg {
    let max = columns.iter().map(|c| c.value.max(0)).max().unwrap_or(0);
    let top = nice_top(max);
    let plot_w = CHART_W - LEFT - RIGHT;
    let plot_h = CHART_H - TOP - BOTTOM;
    let y = |v: i64| TOP + plot_h - (v.max(0) as f64 / top as f64) * plot_h;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {CHART_W} {CHART_H}" width="100%" focusable="false">"#,
        escape(label)
    );
    let _ = write!(
        s,
        r#"<text class="axis-title" x="{LEFT}" y="{:.0}" text-anchor="start">{}</text>"#,
        TOP - 8.0,
        escape(axis)
    );
    for tick in [0, top / 2, top] {
        let ty = y(tick);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{:.0}" y1="{ty:.1}" y2="{ty:.1}"/><text class="tick" x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"#,
            CHART_W - RIGHT,
            LEFT - 6.0,
            ty + 4.0,
            escape(&int(tick))
        );
    }
    let n = columns.len().max(1) as f64;
    let slot = plot_w / n;
    let bar = slot * 0.7;
    for (i, c) in columns.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let by = y(c.value);
        let h = (TOP + plot_h - by).max(0.0);
        let _ = write!(
            s,
            r#"<g><title>{}</title><rect class="slot" x="{:.1}" y="{TOP}" width="{:.1}" height="{plot_h:.1}"/>"#,
            escape(&c.title),
            LEFT + slot * i as f64,
            slot
        );
        if h > 0.0 {
            let _ = write!(
                s,
                r#"<rect class="bar" x="{x:.1}" y="{by:.1}" width="{bar:.1}" height="{h:.1}"/>"#
            );
        }
        s.push_str("</g>");
        if !c.label.is_empty() {
            let _ = write!(
                s,
                r#"<text class="tick" x="{:.1}" y="{:.0}" text-anchor="middle">{}</text>"#,
                x + bar / 2.0,
                CHART_H - BOTTOM + 16.0,
                escape(&c.label)
            );
        }
    }
    s.push_str("</svg>");
    Svg(s)
}

/// The top of a y axis for values up to `max`: an even number at least `max` (at least 2),
/// rounded up to 1, 2 or 5 times a power of ten, so that its half is a whole number too.
fn nice_top(max: i64) -> i64 {
    let max = max.max(2);
    let mut step = 1i64;
    loop {
        for m in [2, 4, 10] {
            let top = m * step;
            if top >= max {
                return top;
            }
        }
        match step.checked_mul(10) {
            Some(s) => step = s,
            None => return max + max % 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn texts_are_escaped() {
        let svg = progress(&Progress {
            received: dec!(10),
            matched: dec!(5),
            outstanding: dec!(5),
            target: dec!(40),
            label: "<script>\"x\" & 'y'",
            titles: ["a<b", "c", "d", "e"],
        });
        let s = svg.as_str();
        assert!(s.contains("aria-label=\"&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;\""));
        assert!(s.contains("<title>a&lt;b</title>"));
        assert!(!s.contains("<script>"));
    }

    #[test]
    fn a_bar_shows_received_then_matched_then_outstanding_against_the_target() {
        let s = progress(&Progress {
            received: dec!(100),
            matched: dec!(100),
            outstanding: dec!(200),
            target: dec!(1000),
            label: "l",
            titles: ["r", "m", "o", "t"],
        })
        .0;
        assert!(s.starts_with("<svg class=\"progress\" role=\"img\""));
        assert!(s.contains(r#"class="received" x="0.0" y="0" width="100.0""#));
        assert!(s.contains(r#"class="matched" x="100.0" y="0" width="100.0""#));
        assert!(s.contains(r#"class="outstanding" x="200.0" y="0" width="200.0""#));
        assert!(!s.contains("class=\"target\""), "{s}");
        // past the target, the bar is scaled to the sum and the target marked
        let s = progress(&Progress {
            received: dec!(1500),
            matched: dec!(500),
            outstanding: dec!(0),
            target: dec!(1000),
            label: "l",
            titles: ["r", "m", "o", "t"],
        })
        .0;
        assert!(s.contains(r#"class="received" x="0.0" y="0" width="750.0""#));
        assert!(s.contains(r#"class="target" x="496.0""#), "{s}");
        assert!(!s.contains("class=\"outstanding\""));
    }

    #[test]
    fn a_chart_has_a_bar_and_a_title_per_column_and_labelled_axes() {
        let cols: Vec<Column> = (0..12)
            .map(|i| Column {
                value: i,
                label: if i % 2 == 0 {
                    format!("w{i}")
                } else {
                    String::new()
                },
                title: format!("week {i}: {i} pledges"),
            })
            .collect();
        let int = |n: i64| format!("n{n}");
        let s = columns(&cols, "Pledges <per> week", "Pledges", &int).0;
        assert!(s.contains("aria-label=\"Pledges &lt;per&gt; week\""));
        assert_eq!(s.matches("<title>").count(), 12);
        // zero draws no bar
        assert_eq!(s.matches("class=\"bar\"").count(), 11);
        // the axis caption, three ticks and every other week's label
        assert_eq!(s.matches("</text>").count(), 1 + 3 + 6);
        assert!(s.contains(">w10</text>") && !s.contains(">w11</text>"));
        for tick in ["n0", "n10", "n20"] {
            assert!(s.contains(&format!(">{tick}</text>")), "{tick}: {s}");
        }
    }

    #[test]
    fn axis_tops_are_round_and_even() {
        for (max, top) in [
            (0, 2),
            (1, 2),
            (2, 2),
            (3, 4),
            (5, 10),
            (11, 20),
            (21, 40),
            (41, 100),
            (999, 1000),
        ] {
            assert_eq!(nice_top(max), top, "{max}");
        }
    }
}
