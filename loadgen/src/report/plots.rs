//! SVG plots with `plotters`: the latency percentile distribution (HdrHistogram style:
//! the x axis stretches the tail, 90 %, 99 %, 99.9 % evenly spaced) and the cost of one
//! delivered message per transport.

use std::path::Path;

use plotters::prelude::*;

use crate::results::Results;
use crate::run::decode_histogram;

/// One colour per transport, in run order (shared by every plot).
pub(crate) const COLORS: [RGBColor; 4] =
    [RGBColor(214, 39, 40), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(31, 119, 180)];

pub(crate) fn draw_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e}")
}

/// The short line beside a series' name in the legend.
pub(crate) fn legend_mark(x: i32, y: i32, color: RGBColor) -> PathElement<(i32, i32)> {
    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

/// The legend box, top left, as every plot here draws it.
pub(crate) fn draw_legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)
}

/// Latency by percentile, one line per transport, both axes logarithmic.
pub fn latency_percentiles(results: &Results, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    // x = 1 / (1 − q): 2 is the median, 100 the 99th percentile, 1000 the 99.9th.
    let mut series = Vec::new();
    let (mut lo, mut hi) = (f64::MAX, 0.0f64);
    for t in &results.transports {
        let histogram = decode_histogram(&t.latency.histogram)?;
        if histogram.is_empty() {
            continue;
        }
        let points: Vec<(f64, f64)> = (0..=400)
            .map(|i| {
                let q = 1.0 - 10f64.powf(-(i as f64) / 100.0); // 0 … 0.9999
                let ms = histogram.value_at_quantile(q).max(1) as f64 / 1e3;
                lo = lo.min(ms);
                hi = hi.max(ms);
                (1.0 / (1.0 - q), ms)
            })
            .collect();
        series.push((t.transport.name(), points));
    }
    if series.is_empty() {
        return Ok(());
    }
    let mut chart = ChartBuilder::on(&root)
        .caption("Delivery latency by percentile (from intended publish time)", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0f64..10_000.0).log_scale(), (lo * 0.8..hi * 1.25).log_scale())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| format!("{:.2}%", 100.0 * (1.0 - 1.0 / x)))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(draw_error)?;
    for (i, (name, points)) in series.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(draw_error)?
            .label(name)
            .legend(move |(x, y)| legend_mark(x, y, color));
    }
    draw_legend(&mut chart)?;
    root.present().map_err(draw_error)?;
    Ok(())
}

/// Bytes on the wire per delivered message and requests per message, side by side.
pub fn cost_per_message(results: &Results, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let (left, right) = root.split_horizontally(450);
    let names: Vec<&str> = results.transports.iter().map(|t| t.transport.name()).collect();
    let panels: [(&str, Vec<f64>, _); 2] = [
        (
            "Wire bytes per delivered message",
            results.transports.iter().map(|t| t.traffic.bytes_per_message).collect(),
            left,
        ),
        (
            "HTTP requests per delivered message",
            results.transports.iter().map(|t| t.traffic.requests_per_message).collect(),
            right,
        ),
    ];
    for (title, values, area) in panels {
        let top = values.iter().cloned().fold(0.0f64, f64::max).max(1e-6) * 1.15;
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 16))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(60)
            // plotters' integer ranges include their end: 0..n-1 is n bars.
            .build_cartesian_2d((0..names.len().saturating_sub(1)).into_segmented(), 0.0..top)
            .map_err(draw_error)?;
        let labels = names.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => labels.get(*i).copied().unwrap_or("").to_string(),
                _ => String::new(),
            })
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                let color = COLORS[i % COLORS.len()];
                Rectangle::new(
                    [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), *v)],
                    color.mix(0.8).filled(),
                )
            }))
            .map_err(draw_error)?;
    }
    root.present().map_err(draw_error)?;
    Ok(())
}

/// A sweep (one run per `--poll-interval` or `--rtt` value): latency (p50 solid, p99
/// dashed) and idle cost per client per day against the swept setting, one colour per
/// transport. Both y axes are logarithmic: polling and push differ by orders of magnitude.
pub fn sweep(runs: &[Results], path: &Path) -> anyhow::Result<()> {
    let Some(first) = runs.first() else { return Ok(()) };
    let poll_sweep = first.setup.workload["sweep"].as_str() == Some("poll_interval");
    let x_of = |r: &Results| {
        let w = &r.setup.workload;
        if poll_sweep {
            w["poll_interval_seconds"].as_f64().unwrap_or(0.0) * 1e3
        } else {
            w["network"]["rtt_ms"].as_f64().unwrap_or(0.0)
        }
    };
    let x_desc = if poll_sweep { "short-poll interval (ms)" } else { "round-trip time (ms)" };
    let xs: Vec<f64> = runs.iter().map(x_of).collect();
    let x_max = xs.iter().cloned().fold(1.0f64, f64::max) * 1.05;
    let transports: Vec<_> = first.transports.iter().map(|t| t.transport).collect();
    /// One run of the sweep, for one transport.
    struct Point {
        x: f64,
        p50: f64,
        p99: f64,
        idle_per_day: f64,
    }
    // (transport, its points), only where the run has the transport.
    let series: Vec<(&str, Vec<Point>)> = transports
        .iter()
        .map(|&transport| {
            let points: Vec<Point> = runs
                .iter()
                .filter_map(|r| {
                    let t = r.transport(transport)?;
                    let floor = |v: f64| v.max(1e-3);
                    Some(Point {
                        x: x_of(r),
                        p50: floor(t.latency.p50_ms),
                        p99: floor(t.latency.p99_ms),
                        idle_per_day: t.idle.bytes_per_client_per_day.max(1.0),
                    })
                })
                .collect();
            (transport.name(), points)
        })
        .collect();
    // The y range spanning every point's low and high value.
    let range = |low: &dyn Fn(&Point) -> f64, high: &dyn Fn(&Point) -> f64| {
        let points = || series.iter().flat_map(|(_, p)| p.iter());
        let lo = points().map(low).fold(f64::MAX, f64::min);
        let hi = points().map(high).fold(0.0f64, f64::max);
        (lo * 0.7)..(hi * 1.5)
    };
    let root = SVGBackend::new(path, (1000, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let (left, right) = root.split_horizontally(500);

    let mut chart = ChartBuilder::on(&left)
        .caption("Latency: p50 (solid), p99 (dashed)", ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, range(&|p| p.p50, &|p| p.p99).log_scale())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("latency (ms)")
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(draw_error)?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(
                LineSeries::new(points.iter().map(|p| (p.x, p.p50)), color.stroke_width(2)).point_size(3),
            )
            .map_err(draw_error)?
            .label(*name)
            .legend(move |(x, y)| legend_mark(x, y, color));
        chart
            .draw_series(DashedLineSeries::new(
                points.iter().map(|p| (p.x, p.p99)),
                6,
                4,
                color.stroke_width(1),
            ))
            .map_err(draw_error)?;
    }
    draw_legend(&mut chart)?;

    let mut chart = ChartBuilder::on(&right)
        .caption("Idle cost per client per day (bytes)", ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, range(&|p| p.idle_per_day, &|p| p.idle_per_day).log_scale())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| super::bytes(*y))
        .draw()
        .map_err(draw_error)?;
    for (i, (_, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(
                LineSeries::new(points.iter().map(|p| (p.x, p.idle_per_day)), color.stroke_width(2))
                    .point_size(3),
            )
            .map_err(draw_error)?;
    }
    root.present().map_err(draw_error)?;
    Ok(())
}
