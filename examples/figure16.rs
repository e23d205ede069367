//! Figure 16 of the Raft paper (§9.3), in the simulator: how long a cluster of
//! five takes to replace a crashed leader, for several election timeout ranges.
//!
//! ```text
//! cargo run --release --features sim --example figure16 -- [out.svg] [--trials N] [--seed S]
//! ```
//!
//! Setup, after the paper: five servers; a one-way message latency of 7–8 ms
//! (a broadcast time of about 15 ms); a 1 ms tick, so timeouts in ticks are
//! milliseconds; heartbeats every half minimum election timeout; the leader
//! is crashed at a uniformly random moment of its heartbeat interval, and the
//! time until another server is leader is measured. The crashed server then
//! restarts and the cluster settles before the next trial. 1000 trials per
//! setting (100 for 150–150 ms, as in the paper).
//!
//! Prints the median and worst time per setting and writes the cumulative
//! distributions as an SVG (default `figure16.svg`). All safety checks of the
//! simulator run throughout.

use std::fmt::Write as _;
use std::process::ExitCode;

use zaft::sim::{Cluster, Plan, Rng, TICK_US};
use zaft::{Config, NodeId};

/// (min, max) election timeout in ms, trials, which panel (0 top, 1 bottom).
const SETTINGS: [(u32, u32, usize, usize); 11] = [
    (150, 150, 100, 0),
    (150, 151, 1000, 0),
    (150, 155, 1000, 0),
    (150, 175, 1000, 0),
    (150, 200, 1000, 0),
    (150, 300, 1000, 0),
    (12, 24, 1000, 1),
    (25, 50, 1000, 1),
    (50, 100, 1000, 1),
    (100, 200, 1000, 1),
    (150, 300, 1000, 1),
];

/// A trial that elects nobody in this long is cut off (and reported).
const GIVE_UP_MS: u64 = 120_000;

struct Row {
    min: u32,
    max: u32,
    panel: usize,
    /// Milliseconds to elect a new leader, sorted.
    times: Vec<f64>,
    cut_off: usize,
}

fn measure(min: u32, max: u32, trials: usize, panel: usize, seed: u64) -> Result<Row, String> {
    let mut config = Config::new(NodeId(1), [NodeId(1)]);
    config.election_timeout_ticks_min = min;
    config.election_timeout_ticks_max = max;
    config.heartbeat_interval_ticks = (min / 2).max(1);
    let plan = Plan::quiet(5, TICK_US, (7_000, 8_000), (200, 1_000), config);
    let mut cluster = Cluster::new(plan, seed).map_err(|f| f.to_string())?;
    let mut rng = Rng::new(seed ^ 0xF16);
    let ms = |us: u64| us as f64 / 1_000.0;
    let settle_us = 3 * u64::from(max) * TICK_US + 500 * TICK_US;
    let mut times = Vec::with_capacity(trials);
    let mut cut_off = 0;
    while times.len() + cut_off < trials {
        // A steady leader, everyone up and caught up.
        let until = cluster.now_us() + settle_us;
        cluster
            .run_until(until, |_| false)
            .map_err(|f| f.to_string())?;
        let until = cluster.now_us() + GIVE_UP_MS * TICK_US;
        if !cluster
            .run_until(until, |c| c.leader().is_some())
            .map_err(|f| f.to_string())?
        {
            return Err(format!("{min}-{max}: no leader to crash"));
        }
        // Crash it at a random moment of its heartbeat interval.
        let hb_us = u64::from((min / 2).max(1)) * TICK_US;
        let until = cluster.now_us() + rng.below(hb_us);
        cluster
            .run_until(until, |_| false)
            .map_err(|f| f.to_string())?;
        let Some((old, term)) = cluster.leader() else {
            continue;
        };
        cluster.crash(old).map_err(|f| f.to_string())?;
        let crashed_at = cluster.now_us();
        let until = crashed_at + GIVE_UP_MS * TICK_US;
        let elected = cluster
            .run_until(until, |c| c.leader().is_some_and(|(_, t)| t > term))
            .map_err(|f| f.to_string())?;
        if elected {
            times.push(ms(cluster.now_us() - crashed_at));
        } else {
            cut_off += 1;
        }
        cluster.restart(old).map_err(|f| f.to_string())?;
    }
    times.sort_by(f64::total_cmp);
    Ok(Row {
        min,
        max,
        panel,
        times,
        cut_off,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// One panel of the figure: cumulative percent of trials against time.
fn panel(svg: &mut String, rows: &[&Row], top: f64, log_x: bool, x_max: f64, title: &str) {
    let (left, width, height) = (70.0, 560.0, 230.0);
    let x_min = if log_x { 100.0 } else { 0.0 };
    let x = |t: f64| -> f64 {
        let t = t.clamp(x_min, x_max);
        if log_x {
            left + width * (t.log10() - x_min.log10()) / (x_max.log10() - x_min.log10())
        } else {
            left + width * (t - x_min) / (x_max - x_min)
        }
    };
    let y = |frac: f64| top + height * (1.0 - frac);
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" font-size="14" font-weight="bold">{title}</text>"##,
        left,
        top - 10.0
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#333"/>"##
    );
    for pct in [0, 20, 40, 60, 80, 100] {
        let yy = y(f64::from(pct) / 100.0);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{yy}" x2="{}" y2="{yy}" stroke="#ddd"/><text x="{}" y="{}" font-size="11" text-anchor="end">{pct}%</text>"##,
            left + width,
            left - 6.0,
            yy + 4.0
        );
    }
    let ticks: Vec<f64> = if log_x {
        vec![100.0, 1_000.0, 10_000.0, 100_000.0]
    } else {
        (0..=6).map(|i| f64::from(i) * 100.0).collect()
    };
    for t in ticks {
        let xx = x(t);
        let label = match (log_x, t >= 1_000.0) {
            (true, true) => format!("{} s", t / 1_000.0),
            (true, false) => format!("{t} ms"),
            (false, _) => format!("{t}"),
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{xx}" y1="{top}" x2="{xx}" y2="{}" stroke="#ddd"/><text x="{xx}" y="{}" font-size="11" text-anchor="middle">{label}</text>"##,
            top + height,
            top + height + 16.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>"##,
        left + width / 2.0,
        top + height + 34.0,
        if log_x {
            "time without leader (log scale)"
        } else {
            "time without leader (ms)"
        }
    );
    let _ = writeln!(
        svg,
        r##"<text x="20" y="{}" font-size="12" transform="rotate(-90 20 {})" text-anchor="middle">cumulative percent</text>"##,
        top + height / 2.0,
        top + height / 2.0
    );
    for (k, row) in rows.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let n = (row.times.len() + row.cut_off) as f64;
        let mut points = format!("{:.1},{:.1}", x(x_min), y(0.0));
        for (i, t) in row.times.iter().enumerate() {
            let _ = write!(
                points,
                " {:.1},{:.1} {:.1},{:.1}",
                x(*t),
                y(i as f64 / n),
                x(*t),
                y((i + 1) as f64 / n)
            );
        }
        let last = row.times.len() as f64 / n;
        let _ = write!(points, " {:.1},{:.1}", x(x_max), y(last));
        let _ = writeln!(
            svg,
            r##"<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{points}"/>"##
        );
        let ly = top + 16.0 + 16.0 * k as f64;
        let lx = left + width + 16.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}" font-size="12">{}–{} ms</text>"##,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            row.min,
            row.max
        );
    }
}

fn svg(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="780" height="640" viewBox="0 0 780 640" font-family="sans-serif">"##
    );
    let _ = writeln!(s, r##"<rect width="780" height="640" fill="white"/>"##);
    let top: Vec<&Row> = rows.iter().filter(|r| r.panel == 0).collect();
    let bottom: Vec<&Row> = rows.iter().filter(|r| r.panel == 1).collect();
    panel(
        &mut s,
        &top,
        40.0,
        true,
        100_000.0,
        "zaft, Figure 16 (top): randomness in the election timeout",
    );
    panel(
        &mut s,
        &bottom,
        360.0,
        false,
        600.0,
        "zaft, Figure 16 (bottom): shorter election timeouts",
    );
    s.push_str("</svg>\n");
    s
}

fn main() -> ExitCode {
    let mut out = String::from("figure16.svg");
    let mut trials_cap = usize::MAX;
    let mut seed = 16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--trials" => {
                trials_cap = args.next().and_then(|v| v.parse().ok()).unwrap_or(1000);
            }
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(16),
            _ => out = a,
        }
    }
    println!(
        "Figure 16: time to elect a new leader after the leader crashes (5 servers, ~15 ms broadcast)"
    );
    println!(
        "{:>12} {:>7} {:>10} {:>10} {:>10} {:>10}",
        "timeout ms", "trials", "median ms", "mean ms", "p99 ms", "worst ms"
    );
    let mut rows = Vec::new();
    for (i, &(min, max, trials, panel)) in SETTINGS.iter().enumerate() {
        let row = match measure(min, max, trials.min(trials_cap), panel, seed + i as u64) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let mean = row.times.iter().sum::<f64>() / row.times.len().max(1) as f64;
        let worst = if row.cut_off > 0 {
            format!(">{GIVE_UP_MS}")
        } else {
            format!("{:.0}", row.times.last().copied().unwrap_or(f64::NAN))
        };
        println!(
            "{:>12} {:>7} {:>10.0} {:>10.0} {:>10.0} {:>10}",
            format!("{min}-{max}"),
            row.times.len() + row.cut_off,
            percentile(&row.times, 0.5),
            mean,
            percentile(&row.times, 0.99),
            worst
        );
        rows.push(row);
    }
    if let Err(e) = std::fs::write(&out, svg(&rows)) {
        eprintln!("cannot write {out}: {e}");
        return ExitCode::FAILURE;
    }
    println!("wrote {out}");
    ExitCode::SUCCESS
}
