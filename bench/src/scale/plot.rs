//! The lifetime phase's plot, hand-written SVG: panels stacked on a shared
//! time axis, each with its own y axis, grid, labels and an optional shaded
//! band (the expected plateau). Sized to read well at about 700 px wide.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
/// Room for the y tick labels and the rotated axis title.
const LEFT: f64 = 84.0;
const RIGHT: f64 = 24.0;
/// Room for the title.
const TOP: f64 = 52.0;
const PANEL: f64 = 200.0;
/// Between two panels: the upper one's x tick labels.
const GAP: f64 = 48.0;
/// Below the last panel: its x tick labels and the x axis title.
const BOTTOM: f64 = 60.0;

/// One panel: a series against time.
pub struct Panel<'a> {
    pub y_label: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
    /// A shaded band from `.0` to `.1`, labelled `.2`.
    pub band: Option<(f64, f64, String)>,
}

/// The SVG document of `panels` under `title`; `marker` draws a dashed
/// line across every panel at that x, labelled left of it, low in the
/// first panel (where a rising series leaves room).
pub fn svg(
    title: &str,
    x_label: &str,
    marker: Option<(f64, &str)>,
    panels: &[Panel<'_>],
) -> String {
    let x_data = panels
        .iter()
        .flat_map(|panel| panel.points.iter().map(|&(x, _)| x))
        .fold(0.0, f64::max);
    let (x_max, x_step) = axis(x_data);
    let plot_width = WIDTH - LEFT - RIGHT;
    let n = panels.len() as f64;
    let height = TOP + n * PANEL + (n - 1.0).max(0.0) * GAP + BOTTOM;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    for (i, panel) in panels.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL + GAP);
        let bottom = top + PANEL;
        let y_data = panel
            .points
            .iter()
            .map(|&(_, y)| y)
            .chain(panel.band.as_ref().map(|band| band.1))
            .fold(0.0, f64::max);
        let (y_max, y_step) = axis(y_data);
        let px = |x: f64| LEFT + x / x_max * plot_width;
        let py = |y: f64| bottom - y / y_max * PANEL;

        if let Some((low, high, label)) = &panel.band {
            let _ = writeln!(
                out,
                r##"<rect x="{LEFT}" y="{:.1}" width="{plot_width}" height="{:.1}" fill="#2ca02c" fill-opacity="0.15"/>"##,
                py(*high),
                (py(*low) - py(*high)).max(1.0)
            );
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="12" fill="#1a6b1a">{}</text>"##,
                LEFT + plot_width - 6.0,
                py(*low) - 6.0,
                escape(label)
            );
        }
        for k in 0..=((y_max / y_step).round() as usize) {
            let y = k as f64 * y_step;
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_width,
                py(y),
                py(y),
                LEFT - 6.0,
                py(y) + 4.0,
                tick(y, y_step)
            );
        }
        for k in 0..=((x_max / x_step).round() as usize) {
            let x = k as f64 * x_step;
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{top}" y2="{bottom}" stroke="#eee"/><text x="{:.1}" y="{}" text-anchor="middle">{}</text>"##,
                px(x),
                px(x),
                px(x),
                bottom + 17.0,
                tick(x, x_step)
            );
        }
        if let Some((x, label)) = marker.filter(|(x, _)| *x <= x_max) {
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{top}" y2="{bottom}" stroke="#666" stroke-dasharray="5 4"/>"##,
                px(x),
                px(x)
            );
            if i == 0 {
                let _ = writeln!(
                    out,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="12" fill="#444">{}</text>"##,
                    px(x) - 5.0,
                    bottom - 8.0,
                    escape(label)
                );
            }
        }
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{top}" width="{plot_width}" height="{PANEL}" fill="none" stroke="#444"/>"##
        );
        let _ = writeln!(
            out,
            r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            top + PANEL / 2.0,
            escape(panel.y_label)
        );
        let points: Vec<String> = panel
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            points.join(" "),
            panel.color
        );
        for &(x, y) in &panel.points {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                px(x),
                py(y),
                panel.color
            );
        }
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + plot_width / 2.0,
        height - 14.0,
        escape(x_label)
    );
    out.push_str("</svg>\n");
    out
}

/// An axis for data up to `max`: its end and its tick step, about five
/// ticks of 1, 2 or 5 × 10^k.
fn axis(max: f64) -> (f64, f64) {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let magnitude = 10_f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

/// A tick label with as many decimals as the step needs.
fn tick(value: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    if decimals == 0 {
        crate::report::thousands(value.round() as u64)
    } else {
        format!("{value:.decimals$}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_a_round_tick() {
        assert_eq!(axis(11_874.0), (15_000.0, 5_000.0));
        assert_eq!(axis(600.0), (600.0, 200.0));
        assert_eq!(axis(14.3), (15.0, 5.0));
        assert_eq!(axis(0.0), (1.0, 0.2));
        assert_eq!(tick(0.4, 0.2), "0.4");
        assert_eq!(tick(12_000.0, 2_000.0), "12,000");
    }

    #[test]
    fn a_plot_is_one_svg_with_every_panel() {
        let panels = [
            Panel {
                y_label: "Leases",
                color: "#1f77b4",
                points: vec![(0.0, 0.0), (10.0, 900.0), (20.0, 1_800.0)],
                band: Some((1_000.0, 1_300.0, "expected <plateau>".to_owned())),
            },
            Panel {
                y_label: "client VmRSS, MiB",
                color: "#d62728",
                points: vec![(0.0, 12.0), (10.0, 13.5), (20.0, 13.4)],
                band: None,
            },
        ];
        let svg = svg(
            "title & more",
            "elapsed, s",
            Some((12.0, "from here")),
            &panels,
        );
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(
            svg.matches("stroke-dasharray").count(),
            2,
            "the marker in both"
        );
        assert!(svg.contains("title &amp; more") && svg.contains("expected &lt;plateau&gt;"));
    }
}
