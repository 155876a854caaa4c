//! What `muster bench` measured, and how it is shown: a table on stdout, or JSON with
//! `--json`; notes about complaining children go to stderr either way.

use super::BenchArgs;
use super::fleet::{CLOCK_TICKS, Fleet, Note, Proc};
use super::floor::RAW_PAYLOAD;
use std::collections::BTreeMap;

/// Latency figures in milliseconds, the one shape every measured latency is reported in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Summary {
    /// How many samples.
    pub(super) count: usize,
    /// Median (nearest rank).
    pub(super) p50: f64,
    /// 99th percentile (nearest rank).
    pub(super) p99: f64,
    /// Slowest sample.
    pub(super) max: f64,
}

impl Summary {
    /// Nearest-rank percentiles of `millis`, so that every figure is a latency that was
    /// actually observed; `NaN` where there are no samples.
    pub(super) fn of(mut millis: Vec<f64>) -> Self {
        millis.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p / 100.0) * millis.len() as f64).ceil() as usize;
            millis.get(index.saturating_sub(1)).copied().unwrap_or(f64::NAN)
        };
        Self { count: millis.len(), p50: rank(50.0), p99: rank(99.0), max: millis.last().copied().unwrap_or(f64::NAN) }
    }
}

/// The raw JetStream floor, what muster's figures are set against.
pub(super) struct Floor {
    /// One raw round trip (work there, result back).
    pub(super) round_trip: Summary,
    /// Round trips per second, one at a time.
    pub(super) per_second: f64,
}

/// CPU time of the children, in clock ticks, so that the cost of a step can be told apart from
/// its latency.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cpu {
    orchestrator: Option<u64>,
    agents: Option<u64>,
    server: Option<u64>,
}

impl Cpu {
    /// The children's CPU time so far; taken before and after the measured runs.
    pub(super) fn sample(fleet: &Fleet) -> Self {
        let agents = fleet.agents.iter().map(Proc::cpu_ticks).sum::<Option<u64>>();
        Self {
            orchestrator: fleet.orchestrator.as_ref().and_then(Proc::cpu_ticks),
            agents: if fleet.agents.is_empty() { None } else { agents },
            server: fleet.server.as_ref().and_then(Proc::cpu_ticks),
        }
    }

    /// The CPU time spent between `before` and this sample.
    pub(super) fn since(self, before: Self) -> Self {
        let delta = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b?));
        Self {
            orchestrator: delta(self.orchestrator, before.orchestrator),
            agents: delta(self.agents, before.agents),
            server: delta(self.server, before.server),
        }
    }
}

/// What the muster phase measured.
pub(super) struct Muster {
    /// Measured runs that finished.
    pub(super) runs: usize,
    /// Of those, the ones that did not succeed (they make the exit code non-zero).
    pub(super) failed_runs: usize,
    /// Succeeded steps, dispatch to result accepted.
    pub(super) step: Summary,
    /// Runs, start to finish.
    pub(super) run: Summary,
    /// First trigger to last run finished.
    pub(super) wall_seconds: f64,
    /// The children's CPU time over the measured runs.
    pub(super) cpu: Cpu,
}

impl Muster {
    fn steps_per_second(&self) -> f64 {
        self.step.count as f64 / self.wall_seconds
    }

    fn runs_per_second(&self) -> f64 {
        self.runs as f64 / self.wall_seconds
    }

    /// CPU milliseconds per measured step.
    fn cpu_ms_per_step(&self, ticks: Option<u64>) -> Option<f64> {
        let steps = self.step.count;
        (steps > 0).then_some(())?;
        Some(ticks? as f64 * 1000.0 / CLOCK_TICKS / steps as f64)
    }
}

/// Everything one invocation measured, ready to print.
pub(super) struct Report {
    /// The flags the figures were measured with.
    pub(super) args: Summarised,
    /// The nats-server version.
    pub(super) server: String,
    /// The raw JetStream floor.
    pub(super) floor: Floor,
    /// The muster phase.
    pub(super) muster: Muster,
}

/// The flags, as echoed in the output so that a figure can be reproduced.
pub(super) struct Summarised {
    runs: u32,
    steps: u32,
    concurrency: u32,
    agents: u32,
    baseline: u32,
    nats: Option<String>,
}

impl From<&BenchArgs> for Summarised {
    fn from(args: &BenchArgs) -> Self {
        Self {
            runs: args.runs,
            steps: args.steps,
            concurrency: args.concurrency,
            agents: args.agents,
            baseline: args.baseline,
            nats: args.nats.clone(),
        }
    }
}

impl Report {
    fn latency_ratio(&self) -> f64 {
        self.muster.step.p50 / self.floor.round_trip.p50
    }

    fn throughput_ratio(&self) -> f64 {
        self.floor.per_second / self.muster.steps_per_second()
    }

    /// The figures as a table on stdout (the default output).
    pub(super) fn print(&self) {
        let (a, f, m) = (&self.args, &self.floor, &self.muster);
        let server = if a.nats.is_some() { "" } else { " (private, sync_interval: always)" };
        println!(
            "muster bench · {} runs × {} steps · {} in flight · {} agent(s) per role · nats-server {}{server}",
            a.runs, a.steps, a.concurrency, a.agents, self.server
        );
        println!();
        println!("{:<30} {:>9} {:>9} {:>9}  throughput", "", "p50", "p99", "max");
        let floor = format!("{:.0} round trips/s ({} round trips)", f.per_second, f.round_trip.count);
        print_row("raw JetStream round trip", &f.round_trip, &floor);
        let steps = format!("{:.1} steps/s ({} steps)", m.steps_per_second(), m.step.count);
        print_row("muster step (dispatch→result)", &m.step, &steps);
        let runs = format!(
            "{:.2} runs/s ({} runs, {} failed, {:.2}s wall)",
            m.runs_per_second(),
            m.runs,
            m.failed_runs,
            m.wall_seconds
        );
        print_row("muster run (end to end)", &m.run, &runs);
        println!();
        println!("{:<30} {:.2}×", "muster p50 / floor p50", self.latency_ratio());
        println!("{:<30} {:.2}×", "floor ops/s / muster steps/s", self.throughput_ratio());
        let cpu = |ticks| m.cpu_ms_per_step(ticks).map_or_else(|| "n/a".to_owned(), ms);
        println!(
            "{:<30} {}  (agents {}, nats-server {})",
            "orchestrator CPU per step",
            cpu(m.cpu.orchestrator),
            cpu(m.cpu.agents),
            cpu(m.cpu.server)
        );
    }

    /// The figures as JSON (`--json`), with how many warning lines each child logged.
    pub(super) fn json(&self, notes: &[Note]) -> serde_json::Value {
        let (a, f, m) = (&self.args, &self.floor, &self.muster);
        let summary =
            |s: &Summary| serde_json::json!({ "count": s.count, "p50_ms": s.p50, "p99_ms": s.p99, "max_ms": s.max });
        let warnings: BTreeMap<&str, usize> = notes.iter().map(|(name, count, _)| (name.as_str(), *count)).collect();
        serde_json::json!({
            "config": {
                "runs": a.runs, "steps": a.steps, "concurrency": a.concurrency, "agents_per_role": a.agents,
                "baseline": a.baseline, "nats": a.nats, "private_server": a.nats.is_none(), "server_version": self.server,
            },
            "floor": { "round_trip": summary(&f.round_trip), "round_trips_per_second": f.per_second, "payload_bytes": RAW_PAYLOAD },
            "muster": {
                "runs": m.runs, "failed_runs": m.failed_runs, "wall_seconds": m.wall_seconds,
                "step": summary(&m.step), "run": summary(&m.run),
                "steps_per_second": m.steps_per_second(), "runs_per_second": m.runs_per_second(),
            },
            "ratios": { "latency_p50": self.latency_ratio(), "throughput": self.throughput_ratio() },
            "cpu_ms_per_step": {
                "clock_ticks_per_second": CLOCK_TICKS,
                "orchestrator": m.cpu_ms_per_step(m.cpu.orchestrator),
                "agents": m.cpu_ms_per_step(m.cpu.agents),
                "nats_server": m.cpu_ms_per_step(m.cpu.server),
            },
            "child_log_warnings": warnings,
        })
    }
}

/// One latency row of the table: label, p50, p99, max, then the throughput text.
fn print_row(label: &str, latency: &Summary, throughput: &str) {
    println!("{label:<30} {:>9} {:>9} {:>9}  {throughput}", ms(latency.p50), ms(latency.p99), ms(latency.max));
}

/// `1.234` → `1.23ms`.
fn ms(value: f64) -> String {
    format!("{value:.2}ms")
}

/// The children's warning lines on stderr, so that a figure measured while one complained is
/// read with care (printed whether or not the measurement succeeded).
pub(super) fn print_notes(notes: &[Note]) {
    for (name, count, first) in notes {
        eprintln!("note: {name} logged {count} warning/error line(s), e.g.:");
        for line in first {
            eprintln!("  {line}");
        }
    }
}

/// Renders `--json` output on stdout; a rendering failure is reported, not a panic.
pub(super) fn print_json(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(err) => eprintln!("error: cannot render JSON: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = Summary::of((1..=100).map(f64::from).rev().collect());
        assert_eq!((s.count, s.p50, s.p99, s.max), (100, 50.0, 99.0, 100.0));
        assert!(Summary::of(Vec::new()).p50.is_nan());
    }
}
