//! SVG plots with `plotters`: the latency percentile distribution (HdrHistogram style:
//! the x axis stretches the tail, 90 %, 99 %, 99.9 % evenly spaced) and the cost of one
//! delivered message per transport.

use std::path::Path;

use plotters::prelude::*;

use pushlab_protocol::Transport;

use crate::results::Results;
use crate::run::decode_histogram;

/// One colour per transport, the same in every plot whichever transports a run has:
/// SSE is green in the latency plot of a two-transport run and in a sweep of four.
pub(crate) fn color(transport: Transport) -> RGBColor {
    match transport {
        Transport::ShortPoll => RGBColor(214, 39, 40),
        Transport::LongPoll => RGBColor(255, 127, 14),
        Transport::Sse => RGBColor(44, 160, 44),
        Transport::Ws => RGBColor(31, 119, 180),
    }
}

/// [`color`] by transport name (saved find-max curves name theirs); grey if unknown.
pub(crate) fn color_named(name: &str) -> RGBColor {
    name.parse().map_or(RGBColor(120, 120, 120), color)
}

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
        series.push((t.transport, points));
    }
    if series.is_empty() {
        return Ok(());
    }
    let mut chart = ChartBuilder::on(&root)
        .caption("Delivery latency by percentile (from intended publish time)", ("sans-serif", 20))
        .margin(15)
        // Room on the right for the last tick's label, "99.99%", centred on the edge.
        .margin_right(40)
        .x_label_area_size(45)
        .y_label_area_size(70)
        // Headroom above the highest curve (×5 on the log axis) for the legend, which
        // would otherwise cover the short-poll line.
        .build_cartesian_2d((1.0f64..10_000.0).log_scale(), (lo * 0.8..hi * 5.0).log_scale())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| format!("{:.2}%", 100.0 * (1.0 - 1.0 / x)))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(draw_error)?;
    for (transport, points) in series {
        let color = color(transport);
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(draw_error)?
            .label(transport.name())
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
                let color = color(results.transports[i].transport);
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
    let workload = |r: &Results| {
        r.setup.typed_workload().map_err(|e| anyhow::anyhow!("the saved workload does not read: {e}"))
    };
    let poll_sweep = workload(first)?.sweep == Some(crate::workload::Sweep::PollInterval);
    let mut xs = Vec::new();
    for r in runs {
        let w = workload(r)?;
        xs.push(match poll_sweep {
            true => w.poll_interval_seconds.as_secs_f64() * 1e3,
            false => w.network.rtt.as_secs_f64() * 1e3,
        });
    }
    let x_desc = if poll_sweep { "short-poll interval (ms)" } else { "round-trip time (ms)" };
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
    let series: Vec<(Transport, Vec<Point>)> = transports
        .iter()
        .map(|&transport| {
            let points: Vec<Point> = runs
                .iter()
                .zip(&xs)
                .filter_map(|(r, &x)| {
                    let t = r.transport(transport)?;
                    let floor = |v: f64| v.max(1e-3);
                    Some(Point {
                        x,
                        p50: floor(t.latency.p50_ms),
                        p99: floor(t.latency.p99_ms),
                        idle_per_day: t.idle.bytes_per_client_per_day.max(1.0),
                    })
                })
                .collect();
            (transport, points)
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
    for (transport, points) in &series {
        let color = color(*transport);
        chart
            .draw_series(
                LineSeries::new(points.iter().map(|p| (p.x, p.p50)), color.stroke_width(2)).point_size(3),
            )
            .map_err(draw_error)?
            .label(transport.name())
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
    for (transport, points) in &series {
        let color = color(*transport);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed reference run.
    fn reference() -> Results {
        serde_json::from_str(include_str!("../../../results/2026-11-22-lab/results.json")).unwrap()
    }

    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    #[test]
    fn a_transport_has_its_colour_whatever_its_position() {
        let dir = std::env::temp_dir().join(format!("pushlab-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // SSE alone: drawn first, still in SSE's colour, never in short polling's.
        let mut results = reference();
        results.transports.retain(|t| t.transport == Transport::Sse);
        latency_percentiles(&results, &dir.join("l.svg")).unwrap();
        let svg = std::fs::read_to_string(dir.join("l.svg")).unwrap();
        assert!(svg.contains(&hex(color(Transport::Sse))), "SSE's colour");
        assert!(!svg.contains(&hex(color(Transport::ShortPoll))), "short polling's colour");
        assert_eq!(color_named("sse"), color(Transport::Sse));
        let _ = std::fs::remove_dir_all(dir);
    }
}
