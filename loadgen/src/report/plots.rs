//! SVG plots with `plotters`: the latency percentile distribution (HdrHistogram style:
//! the x axis stretches the tail, 90 %, 99 %, 99.9 % evenly spaced) and the cost of one
//! delivered message per transport: payload, and IP bytes where the run has them.

use std::path::Path;

use plotters::prelude::*;

use pushlab_protocol::Transport;

use super::table::{all_wire, wire_estimated};
use crate::results::Results;
use crate::run::decode_histogram;
use crate::workload::Sweep;

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

/// Bytes per delivered message and requests per message, side by side. Where every
/// transport has wire figures the bytes panel has two bars per transport: the payload
/// (light, what the sockets carried) and the IP bytes (solid, what the network carried:
/// headers, ACKs and retransmissions too).
pub fn cost_per_message(results: &Results, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let (left, right) = root.split_horizontally(450);
    let names: Vec<&str> = results.transports.iter().map(|t| t.transport.name()).collect();
    let ip: Option<Vec<f64>> = all_wire(results).then(|| {
        results.transports.iter().filter_map(|t| t.wire.as_ref().map(|w| w.ip_bytes_per_message)).collect()
    });
    let bytes_title = match (&ip, wire_estimated(results)) {
        (None, _) => "Wire bytes per delivered message",
        (Some(_), false) => "Bytes per message: payload (light), IP (solid)",
        (Some(_), true) => "Bytes/message: payload (light), estimated IP (solid)",
    };
    /// One panel: a light or lone bar per transport (`values`), and a solid one beside it.
    struct Panel<'a> {
        title: &'a str,
        values: Vec<f64>,
        solid: Option<Vec<f64>>,
    }
    let panels = [
        (
            Panel {
                title: bytes_title,
                values: results.transports.iter().map(|t| t.traffic.bytes_per_message).collect(),
                solid: ip,
            },
            left,
        ),
        (
            Panel {
                title: "HTTP requests per delivered message",
                values: results.transports.iter().map(|t| t.traffic.requests_per_message).collect(),
                solid: None,
            },
            right,
        ),
    ];
    for (Panel { title, values, solid }, area) in panels {
        let top =
            values.iter().chain(solid.iter().flatten()).cloned().fold(0.0f64, f64::max).max(1e-6) * 1.15;
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
        // One bar fills its transport's segment; two share it, each in a half, by
        // margins in pixels (a segmented axis has no position between two transports).
        let (x_pixels, _) = chart.plotting_area().get_pixel_range();
        let segment = (x_pixels.end - x_pixels.start).max(0) as u32 / names.len().max(1) as u32;
        let (left_half, right_half) = ((segment / 10, segment / 2), (segment / 2, segment / 10));
        let bar = |i: usize, v: f64, mix: f64, (left, right): (u32, u32)| {
            let color = color(results.transports[i].transport);
            let mut bar = Rectangle::new(
                [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), v)],
                color.mix(mix).filled(),
            );
            bar.set_margin(0, 0, left, right);
            bar
        };
        match &solid {
            None => chart.draw_series(values.iter().enumerate().map(|(i, v)| bar(i, *v, 0.8, (0, 0)))),
            Some(solid) => {
                chart
                    .draw_series(values.iter().enumerate().map(|(i, v)| bar(i, *v, 0.35, left_half)))
                    .map_err(draw_error)?;
                chart.draw_series(solid.iter().enumerate().map(|(i, v)| bar(i, *v, 0.8, right_half)))
            }
        }
        .map_err(draw_error)?;
    }
    root.present().map_err(draw_error)?;
    Ok(())
}

/// A sweep (one run per `--poll-interval`, `--rtt` or `--loss` value): latency (p50
/// solid, p99 dashed) and a cost against the swept setting, one colour per transport:
/// idle cost per client per day, or under loss the IP bytes per message (what
/// retransmissions add) where every run counted them. Both y axes are logarithmic:
/// polling and push differ by orders of magnitude.
pub fn sweep(runs: &[Results], path: &Path) -> anyhow::Result<()> {
    let Some(first) = runs.first() else { return Ok(()) };
    let workload = |r: &Results| {
        r.setup.typed_workload().map_err(|e| anyhow::anyhow!("the saved workload does not read: {e}"))
    };
    let kind = workload(first)?.sweep.unwrap_or(Sweep::Rtt);
    let mut workloads = Vec::new();
    for r in runs {
        workloads.push(workload(r)?);
    }
    // Loss is per direction: plot the one the sweep varies, to the clients unless only
    // the loss to the server is ever set.
    let to_clients = workloads.iter().any(|w| !w.network.loss.to_clients.is_none())
        || workloads.iter().all(|w| w.network.loss.to_server.is_none());
    let xs: Vec<f64> = workloads
        .iter()
        .enumerate()
        .map(|(i, w)| match kind {
            Sweep::PollInterval => w.poll_interval_seconds.as_secs_f64() * 1e3,
            Sweep::Rtt => w.network.rtt.as_secs_f64() * 1e3,
            Sweep::Loss if to_clients => w.network.loss.to_clients.rate * 100.0,
            Sweep::Loss => w.network.loss.to_server.rate * 100.0,
            // Protocols are not a scale: one place each, named below.
            Sweep::Http => i as f64 + 1.0,
        })
        .collect();
    let x_desc = match kind {
        Sweep::PollInterval => "short-poll interval (ms)",
        Sweep::Rtt => "round-trip time (ms)",
        Sweep::Loss if to_clients => "packet loss, server → clients (%)",
        Sweep::Loss => "packet loss, clients → server (%)",
        Sweep::Http => "protocol (http: cleartext, https: TLS)",
    };
    let names: Vec<String> = workloads.iter().map(|w| w.condition.clone().unwrap_or_default()).collect();
    // Loss rates are small: 0.5 % must not print as 0 or 1.
    let x_label = |x: &f64| match kind {
        Sweep::Http => {
            let place = x.round();
            let at = place as usize;
            match (place - x).abs() < 1e-6 && at >= 1 {
                true => names.get(at - 1).cloned().unwrap_or_default(),
                false => String::new(),
            }
        }
        Sweep::Loss => format!("{x:.1}"),
        _ => format!("{x:.0}"),
    };
    // Under loss, what it costs on the wire; otherwise, what staying subscribed costs.
    let wire_cost = kind == Sweep::Loss && runs.iter().all(all_wire);
    let cost_title = match wire_cost {
        true => "IP bytes per delivered message",
        false => "Idle cost per client per day (bytes)",
    };
    let x_max = xs.iter().cloned().fold(1.0f64, f64::max) * 1.05;
    let transports: Vec<_> = first.transports.iter().map(|t| t.transport).collect();
    /// One run of the sweep, for one transport.
    struct Point {
        x: f64,
        p50: f64,
        p99: f64,
        cost: f64,
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
                        cost: match (wire_cost, &t.wire) {
                            (true, Some(w)) => w.ip_bytes_per_message,
                            _ => t.idle.bytes_per_client_per_day,
                        }
                        .max(1.0),
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
        .x_label_formatter(&x_label)
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
        .caption(cost_title, ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, range(&|p| p.cost, &|p| p.cost).log_scale())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&x_label)
        .y_label_formatter(&|y| super::bytes(*y))
        .draw()
        .map_err(draw_error)?;
    for (transport, points) in &series {
        let color = color(*transport);
        chart
            .draw_series(
                LineSeries::new(points.iter().map(|p| (p.x, p.cost)), color.stroke_width(2)).point_size(3),
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

    /// A copy of the reference run whose every transport has wire figures.
    fn with_wire(source: crate::results::WireSource) -> Results {
        let mut results = reference();
        for t in &mut results.transports {
            let ip = t.traffic.bytes_per_message * 1.5;
            t.wire = Some(crate::report::table::wire_tests::wire(source, ip, 1e6));
        }
        results
    }

    #[test]
    fn the_cost_plot_has_a_payload_and_an_ip_bar_per_transport_when_wire_exists() {
        let dir = std::env::temp_dir().join(format!("pushlab-cost-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let svg = |results: &Results| {
            cost_per_message(results, &dir.join("c.svg")).unwrap();
            std::fs::read_to_string(dir.join("c.svg")).unwrap()
        };
        let bars = |svg: &str| svg.matches("<rect").count();
        let (old, new) = (svg(&reference()), svg(&with_wire(crate::results::WireSource::Counted)));
        assert!(old.contains("Wire bytes per delivered message") && !old.contains("IP (solid)"));
        assert!(new.contains("payload (light), IP (solid)"), "labelled");
        // Four more bars: one IP bar beside each payload bar.
        assert_eq!(bars(&new), bars(&old) + 4);
        let estimated = svg(&with_wire(crate::results::WireSource::Estimated));
        assert!(estimated.contains("estimated IP (solid)"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_loss_sweep_plots_against_the_loss_rate() {
        let dir = std::env::temp_dir().join(format!("pushlab-loss-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let runs: Vec<Results> = [0.0, 0.01, 0.03]
            .into_iter()
            .map(|rate| {
                let mut results = with_wire(crate::results::WireSource::Counted);
                let mut w = results.setup.typed_workload().unwrap();
                w.network.loss.to_clients.rate = rate;
                w.network.loss.to_server.rate = rate;
                w.sweep = Some(Sweep::Loss);
                results.setup.workload = serde_json::to_value(&w).unwrap();
                results
            })
            .collect();
        sweep(&runs, &dir.join("s.svg")).unwrap();
        let svg = std::fs::read_to_string(dir.join("s.svg")).unwrap();
        assert!(svg.contains("packet loss, server → clients (%)"), "x axis");
        // Ticks with a decimal: 0.5 % is not 0 or 1. (plotters puts a label on its own line.)
        assert!(svg.lines().any(|l| l.trim() == "0.5"), "loss ticks in percent");
        assert!(svg.contains("IP bytes per delivered message"), "the cost panel is the wire's");
        let _ = std::fs::remove_dir_all(dir);
    }
}
