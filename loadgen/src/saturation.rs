//! `pushlab lab --find-max`: the saturation curve of each transport.
//!
//! The stream's rate goes up step by step (×1.5 each), each step a short lab run against
//! a fresh server, until a step fails: its p99 passes the limit, a message is lost, or
//! fewer messages arrive than were offered (the server or the clients fell behind). The
//! last step that passed is the transport's maximum sustained delivery rate on this
//! machine. The curve (offered against delivered, and p99) is plotted in
//! `saturation.svg`.

use std::path::Path;

use plotters::prelude::*;

use crate::lab::{self, LabOptions};
use crate::report;
use crate::report::plots::{color_named, draw_error, draw_legend, legend_mark};
use crate::results::TransportResult;

/// How the rate is raised and when a step fails.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    /// A step fails when its p99 is above this, ms.
    pub p99_limit_ms: f64,
    /// Rate of the first step, messages/s on the stream.
    pub start_rate: f64,
    /// Each step multiplies the rate by this.
    pub factor: f64,
    /// Most steps per transport.
    pub max_steps: usize,
}

pub use crate::results::{Curve, Step};

fn step_of(t: &TransportResult, rate: f64, clients: usize, limit_ms: f64) -> Step {
    let seconds = t.traffic.seconds.max(1e-9);
    let offered = rate * clients as f64;
    let delivered = t.traffic.messages as f64 / seconds;
    let failed = if t.delivery.lost > 0 {
        Some(format!("{} messages lost", t.delivery.lost))
    } else if t.latency.p99_ms > limit_ms {
        Some(format!("p99 {} over the {} limit", report::ms(t.latency.p99_ms), report::ms(limit_ms)))
    } else if delivered < 0.97 * offered {
        Some(format!("delivered {delivered:.0}/s of {offered:.0}/s offered: fell behind"))
    } else {
        None
    };
    Step {
        rate_per_second: rate,
        offered_deliveries_per_second: offered,
        delivered_per_second: delivered,
        p50_ms: t.latency.p50_ms,
        p99_ms: t.latency.p99_ms,
        lost: t.delivery.lost,
        server_cpu_us_per_delivery: t.server.as_ref().map(|s| s.cpu_us_per_message),
        server_cores: t.server.as_ref().map(|s| s.cpu_seconds / seconds),
        loadgen_cores: t.loadgen.cpu_seconds / seconds,
        failed,
    }
}

/// Searches each transport of `options.workload` in turn; writes `saturation.json`,
/// `summary.md` and `saturation.svg` into `options.out`, each step's run under it.
pub async fn find_max(options: &LabOptions, search: Search) -> anyhow::Result<Vec<Curve>> {
    let mut curves = Vec::new();
    for &transport in &options.workload.transports {
        let clients = options.workload.clients;
        let mut curve = Curve {
            transport: transport.name().into(),
            clients,
            steps: Vec::new(),
            max_sustained_deliveries_per_second: 0.0,
        };
        let mut rate = search.start_rate;
        for _ in 0..search.max_steps {
            lab::progress(lab::Progress::FindMaxStep { transport, rate_per_second: rate, clients });
            let mut step_options = options.clone();
            step_options.workload.transports = vec![transport];
            step_options.workload.rate_per_second = rate;
            step_options.out = options.out.join(transport.name()).join(format!("rate-{rate:.0}"));
            let results = lab::run(&step_options).await?;
            let step = step_of(&results.transports[0], rate, clients, search.p99_limit_ms);
            let failed = step.failed.is_some();
            if !failed {
                curve.max_sustained_deliveries_per_second = step.delivered_per_second;
            }
            curve.steps.push(step);
            if failed {
                break;
            }
            rate = (rate * search.factor).round();
        }
        curves.push(curve);
    }
    std::fs::write(options.out.join("saturation.json"), serde_json::to_string_pretty(&curves)? + "\n")?;
    std::fs::write(options.out.join("summary.md"), markdown(&curves, &options.command, search))?;
    plot(&curves, &options.out.join("saturation.svg"))?;
    Ok(curves)
}

/// The curves as text: one table per transport, then the maxima.
pub fn markdown(curves: &[Curve], command: &str, search: Search) -> String {
    let mut out = format!(
        "# pushlab saturation search\n\nCommand: `{command}`  \nA step fails when its p99 passes {}, a message \
         is lost, or under 97 % of the offered deliveries arrive. Each step's full results are in its folder.\n",
        report::ms(search.p99_limit_ms)
    );
    let header = [
        "msg/s",
        "offered deliveries/s",
        "delivered/s",
        "p50",
        "p99",
        "server CPU per delivery",
        "server cores",
        "load generator cores",
        "",
    ]
    .map(String::from);
    for c in curves {
        out += &format!(
            "\n## {} ({} clients): at most {:.0} deliveries/s sustained\n\n",
            c.transport, c.clients, c.max_sustained_deliveries_per_second
        );
        let rows: Vec<Vec<String>> = c
            .steps
            .iter()
            .map(|s| {
                vec![
                    format!("{:.0}", s.rate_per_second),
                    format!("{:.0}", s.offered_deliveries_per_second),
                    format!("{:.0}", s.delivered_per_second),
                    report::ms(s.p50_ms),
                    report::ms(s.p99_ms),
                    s.server_cpu_us_per_delivery.map_or("-".into(), |v| format!("{v:.2} µs")),
                    s.server_cores.map_or("-".into(), |v| format!("{v:.2}")),
                    format!("{:.2}", s.loadgen_cores),
                    s.failed.as_deref().unwrap_or("ok").to_string(),
                ]
            })
            .collect();
        out += &report::markdown_table(&header, &rows);
    }
    out
}

/// A saved search's curves for a terminal (`pushlab report saturation.json`): each
/// transport's maximum, then its steps.
pub fn terminal(curves: &[Curve]) -> String {
    let mut out = String::new();
    for c in curves {
        out += &format!(
            "{} ({} clients): at most {:.0} deliveries/s sustained\n",
            c.transport, c.clients, c.max_sustained_deliveries_per_second
        );
        for s in &c.steps {
            out += &format!(
                "  {:>8.0} msg/s  delivered {:>9.0}/s  p50 {:>9}  p99 {:>9}  {}\n",
                s.rate_per_second,
                s.delivered_per_second,
                report::ms(s.p50_ms),
                report::ms(s.p99_ms),
                s.failed.as_deref().unwrap_or("ok"),
            );
        }
    }
    out
}

fn plot(curves: &[Curve], path: &Path) -> anyhow::Result<()> {
    let steps = || curves.iter().flat_map(|c| c.steps.iter());
    if steps().next().is_none() {
        return Ok(());
    }
    let x_max = steps().map(|s| s.offered_deliveries_per_second).fold(1.0, f64::max) * 1.1;
    let y_max = steps().map(|s| s.delivered_per_second).fold(1.0, f64::max).max(x_max / 1.1) * 1.1;
    let p99_lo = steps().map(|s| s.p99_ms.max(0.01)).fold(f64::MAX, f64::min) * 0.7;
    let p99_hi = steps().map(|s| s.p99_ms).fold(0.0, f64::max) * 1.5;
    let root = SVGBackend::new(path, (1000, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let (left, right) = root.split_horizontally(500);
    let mut chart = ChartBuilder::on(&left)
        .caption("Delivered against offered (deliveries/s)", ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(draw_error)?;
    let thousands = |v: &f64| format!("{:.0}k", v / 1e3);
    chart
        .configure_mesh()
        .x_desc("offered")
        .y_desc("delivered")
        .x_label_formatter(&thousands)
        .y_label_formatter(&thousands)
        .draw()
        .map_err(draw_error)?;
    chart.draw_series(LineSeries::new([(0.0, 0.0), (x_max, x_max)], BLACK.mix(0.3))).map_err(draw_error)?;
    for c in curves {
        let color = color_named(&c.transport);
        let points = c.steps.iter().map(|s| (s.offered_deliveries_per_second, s.delivered_per_second));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(3))
            .map_err(draw_error)?
            .label(c.transport.clone())
            .legend(move |(x, y)| legend_mark(x, y, color));
    }
    draw_legend(&mut chart)?;
    let mut chart = ChartBuilder::on(&right)
        .caption("p99 latency (ms)", ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (p99_lo..p99_hi).log_scale())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("offered deliveries/s")
        .x_label_formatter(&thousands)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(draw_error)?;
    for c in curves {
        let color = color_named(&c.transport);
        let points = c.steps.iter().map(|s| (s.offered_deliveries_per_second, s.p99_ms.max(0.01)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(3))
            .map_err(draw_error)?;
    }
    root.present().map_err(draw_error)?;
    Ok(())
}
