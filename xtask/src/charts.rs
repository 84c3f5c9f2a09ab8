//! The SVG charts of the "HTTP load" section of docs/benchmarks.md, drawn from a run's figures
//! with `plotters` (its SVG backend only: no system fonts, no bitmap encoders). The SVG names its
//! font family and the browser lays the text out, so labels need no font files here.
//!
//! - `http-throughput.svg`: each scenario's throughput at saturation beside the actix-web
//!   baseline measured right after it (the ratio the goals are stated in).
//! - `http-latency.svg`: p50, p99 and p99.9 at half load on a log scale, with the 2 ms goal.

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::RangedCoordusize;
use plotters::prelude::*;

use crate::report::grouped;
use crate::results::Run;

/// File names under `docs/bench/`, as the markdown links them.
pub const THROUGHPUT: &str = "http-throughput.svg";
pub const LATENCY: &str = "http-latency.svg";

const WIDTH: u32 = 1100;
/// Pixels per scenario row, and around the plot (caption, axis, legend).
const ROW: u32 = 30;
const FRAME: u32 = 110;
const LABEL_AREA: u32 = 430;
const FONT: &str = "sans-serif";

const TALOS: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const BASELINE: RGBColor = RGBColor(0xbb, 0xbb, 0xbb);
const P50: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const P99: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const P999: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// `cargo xtask bench-charts`: redraws the charts from the last full run's
/// `target/bench/results.json`, without measuring again.
pub fn redraw() -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Saved {
        mode: String,
        runs: Vec<Run>,
    }
    let path = crate::workspace::target_dir()
        .join("bench")
        .join("results.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (run `cargo xtask bench` first)", path.display()))?;
    let saved: Saved =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    anyhow::ensure!(
        saved.mode == "full",
        "{} is not from a full run",
        path.display()
    );
    write(&saved.runs)
}

/// Draws both charts into `docs/bench/` (created if missing), naming each file drawn. A chart
/// with no runs to show is not written.
pub fn write(runs: &[Run]) -> Result<()> {
    let dir = crate::workspace::root().join("docs").join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, svg) in [(THROUGHPUT, throughput(runs)?), (LATENCY, latency(runs)?)] {
        let Some(svg) = svg else { continue };
        let path = dir.join(name);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask: drew {}", path.display());
    }
    Ok(())
}

/// A row's label: backend/cache (as the tables name it) and the scenario's title.
fn label(r: &Run) -> String {
    format!("{} · {}", crate::report::label(r), r.title)
}

/// Saturation runs of Talos with their paired baseline, as an SVG document.
pub fn throughput(runs: &[Run]) -> Result<Option<String>> {
    let rows: Vec<(String, f64, f64)> = runs
        .iter()
        .filter(|r| r.load_kind == "saturation" && r.backend.is_some())
        .filter_map(|r| Some((label(r), r.result.rps, r.paired_baseline_rps?)))
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let max = rows.iter().map(|(_, t, b)| t.max(*b)).fold(1.0, f64::max) * 1.08;
    let labels: Vec<&str> = rows.iter().map(|(l, _, _)| l.as_str()).collect();
    let n = rows.len();
    let mut svg = String::new();
    {
        let root = canvas(&mut svg, n)?;
        let mut chart = builder(
            &root,
            "Throughput at saturation: Talos (blue) inside the actix-web baseline run right after it (grey)",
        )
        .build_cartesian_2d(0.0..max, rows_axis(n))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows.len())
            .y_label_formatter(&|v| row_label(&labels, v))
            .x_labels(8)
            .x_label_formatter(&|x| grouped(*x))
            .x_desc("requests per second")
            .label_style((FONT, 12))
            .draw()?;
        // The baseline fills the row; Talos is a narrower bar in front of it.
        chart.draw_series(
            rows.iter()
                .enumerate()
                .map(|(i, (_, _, base))| margin(bar(i, n, 0.0, *base, BASELINE), 3, 3)),
        )?;
        chart.draw_series(
            rows.iter()
                .enumerate()
                .map(|(i, (_, talos, _))| margin(bar(i, n, 0.0, *talos, TALOS), ROW / 4, ROW / 4)),
        )?;
        root.present()?;
    }
    Ok(Some(svg))
}

/// Half-load runs' percentiles, as an SVG document (log scale: they span 0.1 ms to seconds).
pub fn latency(runs: &[Run]) -> Result<Option<String>> {
    let rows: Vec<(String, [f64; 3])> = runs
        .iter()
        .filter(|r| r.load_kind == "half" && r.backend.is_some() && r.result.requests > 0)
        .map(|r| {
            let o = &r.result;
            (label(r), [o.p50_ms, o.p99_ms, o.p999_ms])
        })
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let floor = 0.05;
    let max = rows
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .fold(2.0, f64::max)
        * 1.5;
    let labels: Vec<&str> = rows.iter().map(|(l, _)| l.as_str()).collect();
    let n = rows.len();
    let mut svg = String::new();
    {
        let root = canvas(&mut svg, n)?;
        let mut chart = builder(
            &root,
            "Latency at half load: p50 (green), p99 (orange), p99.9 (red); the line is the 2 ms p99 goal",
        )
        .build_cartesian_2d((floor..max).log_scale(), rows_axis(n))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows.len())
            .y_label_formatter(&|v| row_label(&labels, v))
            .x_label_formatter(&|x| format!("{x} ms"))
            .x_desc("milliseconds (log scale)")
            .label_style((FONT, 12))
            .draw()?;
        let third = ROW / 3;
        for (k, color) in [P50, P99, P999].into_iter().enumerate() {
            let k32 = k as u32;
            let (top, bottom) = (2 + third * k32, (ROW - 2).saturating_sub(third * (k32 + 1)));
            chart.draw_series(rows.iter().enumerate().map(|(i, (_, p))| {
                margin(bar(i, n, floor, p[k].max(floor), color), top, bottom)
            }))?;
        }
        chart.draw_series(std::iter::once(PathElement::new(
            vec![
                (2.0, SegmentValue::Exact(0)),
                (2.0, SegmentValue::Exact(rows.len())),
            ],
            BLACK.stroke_width(1),
        )))?;
        root.present()?;
    }
    Ok(Some(svg))
}

/// A white SVG canvas drawing into `svg`, tall enough for `rows` rows.
fn canvas(svg: &mut String, rows: usize) -> Result<DrawingArea<SVGBackend<'_>, Shift>> {
    let height = FRAME + ROW * rows as u32;
    let root = SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

/// Both charts' frame: the caption, margins and label areas.
fn builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(caption, (FONT, 17))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(LABEL_AREA);
    b
}

/// The rows' axis: one segment per row. Plotters' integer ranges include their end, but an empty
/// one has no segment at all: one row gets an empty segment above it.
fn rows_axis(n: usize) -> SegmentedCoord<RangedCoordusize> {
    (0..n.max(2) - 1).into_segmented()
}

/// Row `i`'s segment boundaries, counted from the top (plotters counts from the bottom).
fn row(i: usize, n: usize) -> (SegmentValue<usize>, SegmentValue<usize>) {
    let s = n - 1 - i;
    (SegmentValue::Exact(s), SegmentValue::Exact(s + 1))
}

/// One horizontal bar from `from` to `value` filling row `i` of `n`.
fn bar(
    i: usize,
    n: usize,
    from: f64,
    value: f64,
    color: RGBColor,
) -> Rectangle<(f64, SegmentValue<usize>)> {
    let (lo, hi) = row(i, n);
    Rectangle::new([(from, lo), (value, hi)], color.filled())
}

/// `r` with `top` and `bottom` pixels of its row left empty.
fn margin<C>(mut r: Rectangle<C>, top: u32, bottom: u32) -> Rectangle<C> {
    r.set_margin(top, bottom, 0, 0);
    r
}

fn row_label(labels: &[&str], v: &SegmentValue<usize>) -> String {
    match v {
        SegmentValue::CenterOf(s) if *s < labels.len() => labels[labels.len() - 1 - s].to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Backend, CacheKind, Load, Outcome};

    fn run(title: &str, load_kind: &'static str, rps: f64, base: Option<f64>, p: [f64; 3]) -> Run {
        Run {
            target: "talos".into(),
            backend: Some(Backend::Sqlite),
            cache: Some(CacheKind::Memory),
            scenario: title.replace(' ', "_"),
            title: title.into(),
            load_kind: load_kind.into(),
            generator: "wrk".into(),
            load: Load {
                connections: 64,
                threads: 2,
                seconds: 10,
                think_ms: 0,
            },
            target_rps: None,
            result: Outcome {
                requests: 1000,
                rps,
                p50_ms: p[0],
                p99_ms: p[1],
                p999_ms: p[2],
                ..Outcome::default()
            },
            paired_baseline_rps: base,
            interference: vec![],
        }
    }

    /// The widths of the filled rectangles of one colour, in drawing order.
    fn widths(svg: &str, color: RGBColor) -> Vec<f64> {
        let fill = format!("fill=\"#{:02X}{:02X}{:02X}\"", color.0, color.1, color.2);
        svg.lines()
            .filter(|l| l.contains("<rect") && l.contains(&fill))
            .filter_map(|l| {
                let w = l.split("width=\"").nth(1)?.split('"').next()?;
                w.parse().ok()
            })
            .collect()
    }

    #[test]
    fn throughput_bars_are_proportional_and_labelled() {
        let runs = [
            run(
                "verify hit",
                "saturation",
                50_000.0,
                Some(100_000.0),
                [0.0; 3],
            ),
            run(
                "verify forged",
                "saturation",
                25_000.0,
                Some(100_000.0),
                [0.0; 3],
            ),
            // Not charted: half load, and a run without a paired baseline.
            run("verify hit", "half", 25_000.0, None, [0.5, 1.0, 2.0]),
            run("batch", "saturation", 10.0, None, [0.0; 3]),
        ];
        let svg = throughput(&runs).unwrap().unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("sqlite/memory · verify hit"));
        assert!(svg.contains("sqlite/memory · verify forged"));
        assert!(!svg.contains("· batch"));
        let talos = widths(&svg, TALOS);
        let base = widths(&svg, BASELINE);
        // One bar of each per row, in the runs' order.
        assert_eq!((talos.len(), base.len()), (2, 2), "{svg}");
        assert!(
            (talos[0] / base[0] - 0.5).abs() < 0.02,
            "{talos:?} {base:?}"
        );
        assert!((talos[1] / talos[0] - 0.5).abs() < 0.02, "{talos:?}");
    }

    #[test]
    fn latency_bars_grow_with_the_percentile() {
        let runs = [run("verify hit", "half", 25_000.0, None, [0.3, 1.5, 9.0])];
        let svg = latency(&runs).unwrap().unwrap();
        assert!(svg.contains("sqlite/memory · verify hit"));
        let (p50, p99, p999) = (widths(&svg, P50), widths(&svg, P99), widths(&svg, P999));
        assert!(
            p50[0] < p99[0] && p99[0] < p999[0],
            "{p50:?} {p99:?} {p999:?}"
        );
        // Log scale: 0.3 → 1.5 ms and 1.5 → 9 ms are about as wide (×5 and ×6).
        let (a, b) = (p99[0] - p50[0], p999[0] - p99[0]);
        assert!((a / b - (5f64).ln() / (6f64).ln()).abs() < 0.1, "{a} {b}");
    }

    #[test]
    fn no_runs_no_chart() {
        assert!(throughput(&[]).unwrap().is_none());
        assert!(latency(&[]).unwrap().is_none());
    }
}
