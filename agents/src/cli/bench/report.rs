//! What `muster bench` measured, and how it is shown: a table on stdout, or JSON with
//! `--json`; notes about complaining children go to stderr either way.

use super::BenchArgs;
use super::figures::{DagPath, Muster, Summary};
use super::fleet::{CLOCK_TICKS, Note};
use super::floor::RAW_PAYLOAD;
use super::protocols::{FAN_OUT, Shape};
use serde_json::json;
use std::collections::BTreeMap;

/// The raw JetStream floor, what muster's figures are set against.
pub(super) struct Floor {
    /// One raw round trip (work there, result back).
    pub(super) round_trip: Summary,
    /// Round trips per second, one at a time.
    pub(super) per_second: f64,
}

/// Everything one invocation measured, ready to print.
pub(super) struct Report {
    /// The flags the figures were measured with.
    pub(super) args: Summarised,
    /// The nats-server version.
    pub(super) server: String,
    /// The raw JetStream floor, shared by every shape.
    pub(super) floor: Floor,
    /// Each measured shape, in the order measured.
    pub(super) shapes: Vec<Muster>,
}

/// The flags, as echoed in the output so that a figure can be reproduced.
pub(super) struct Summarised {
    shape: &'static str,
    chain_steps: u32,
    runs: u32,
    concurrency: u32,
    agents: u32,
    baseline: u32,
    nats: Option<String>,
}

impl From<&BenchArgs> for Summarised {
    fn from(args: &BenchArgs) -> Self {
        Self {
            shape: args.shape.name(),
            chain_steps: args.steps,
            runs: args.runs,
            concurrency: args.concurrency,
            agents: args.agents,
            baseline: args.baseline,
            nats: args.nats.clone(),
        }
    }
}

impl Report {
    /// Runs of any shape that did not succeed (they make the exit code non-zero).
    pub(super) fn failed_runs(&self) -> usize {
        self.shapes.iter().map(|m| m.failed_runs).sum()
    }

    fn latency_ratio(&self, m: &Muster) -> f64 {
        m.step.p50 / self.floor.round_trip.p50
    }

    fn throughput_ratio(&self, m: &Muster) -> f64 {
        self.floor.per_second / m.steps_per_second()
    }

    /// The figures as a table on stdout (the default output).
    pub(super) fn print(&self) {
        let (a, f) = (&self.args, &self.floor);
        let server = if a.nats.is_some() { "" } else { " (private, sync_interval: always)" };
        println!(
            "muster bench · {} runs per shape · {} in flight · {} agent(s) per role · nats-server {}{server}",
            a.runs, a.concurrency, a.agents, self.server
        );
        println!();
        println!("{:<38} {:>9} {:>9} {:>9}  throughput", "", "p50", "p99", "max");
        let floor = format!("{:.0} round trips/s ({} round trips)", f.per_second, f.round_trip.count);
        print_row("raw JetStream round trip", &f.round_trip, &floor);
        for m in &self.shapes {
            self.print_shape(m);
        }
    }

    fn print_shape(&self, m: &Muster) {
        let name = m.shape.name();
        println!();
        match m.shape {
            Shape::Chain => println!("{name}: {} no-op steps, each needing the one before", m.steps_per_run),
            Shape::Dag => println!(
                "{name}: start → {FAN_OUT} parallel no-op steps → gate (security) → fan-in ({} steps + 1 gate)",
                m.steps_per_run
            ),
        }
        let steps = format!("{:.1} steps/s ({} steps)", m.steps_per_second(), m.step.count);
        print_row("  step (dispatch→result accepted)", &m.step, &steps);
        print_row("  of which the program, on the agent", &m.exec, "whole ms, agent's clock");
        let runs = format!(
            "{:.2} runs/s ({} runs, {} failed, {:.2}s wall)",
            m.runs_per_second(),
            m.runs,
            m.failed_runs,
            m.wall_seconds
        );
        print_row("  run (end to end)", &m.run, &runs);
        if let Some(dag) = &m.dag {
            print_dag(dag);
        }
        let applied = m.applied_per_second();
        println!(
            "  {:<36} {applied:.0}/s, one every {}  (applied one at a time)",
            "orchestrator results + verdicts",
            ms(1000.0 / applied)
        );
        println!("  {:<36} {:.2}×", "step p50 / floor p50", self.latency_ratio(m));
        println!("  {:<36} {:.2}×", "floor round trips/s / steps/s", self.throughput_ratio(m));
        let cpu = |ticks| m.cpu_ms_per_step(ticks).map_or_else(|| "n/a".to_owned(), ms);
        println!(
            "  {:<36} {}  (agents {}, nats-server {})",
            "orchestrator CPU per step",
            cpu(m.cpu.orchestrator),
            cpu(m.cpu.agents),
            cpu(m.cpu.server)
        );
    }

    /// The figures as JSON (`--json`), with how many warning lines each child logged. Each
    /// shape is under `shapes.<name>`.
    pub(super) fn json(&self, notes: &[Note]) -> serde_json::Value {
        let (a, f) = (&self.args, &self.floor);
        let warnings: BTreeMap<&str, usize> = notes.iter().map(|(name, count, _)| (name.as_str(), *count)).collect();
        let shapes: serde_json::Map<String, serde_json::Value> =
            self.shapes.iter().map(|m| (m.shape.name().to_owned(), self.shape_json(m))).collect();
        json!({
            "config": {
                "shape": a.shape, "chain_steps": a.chain_steps, "runs": a.runs, "concurrency": a.concurrency, "agents_per_role": a.agents,
                "baseline": a.baseline, "nats": a.nats, "private_server": a.nats.is_none(), "server_version": self.server,
                "clock_ticks_per_second": CLOCK_TICKS,
            },
            "floor": { "round_trip": summary(&f.round_trip), "round_trips_per_second": f.per_second, "payload_bytes": RAW_PAYLOAD },
            "shapes": shapes,
            "child_log_warnings": warnings,
        })
    }

    fn shape_json(&self, m: &Muster) -> serde_json::Value {
        let mut value = json!({
            "steps_per_run": m.steps_per_run,
            "runs": m.runs, "failed_runs": m.failed_runs, "wall_seconds": m.wall_seconds,
            "step": summary(&m.step), "exec_on_agent": summary(&m.exec), "run": summary(&m.run),
            "steps_per_second": m.steps_per_second(), "runs_per_second": m.runs_per_second(),
            "gate_verdicts": m.verdicts, "results_and_verdicts_applied_per_second": m.applied_per_second(),
            "ratios": { "latency_p50": self.latency_ratio(m), "throughput": self.throughput_ratio(m) },
            "cpu_ms_per_step": {
                "orchestrator": m.cpu_ms_per_step(m.cpu.orchestrator),
                "agents": m.cpu_ms_per_step(m.cpu.agents),
                "nats_server": m.cpu_ms_per_step(m.cpu.server),
            },
        });
        if let (Some(dag), Some(object)) = (&m.dag, value.as_object_mut()) {
            object.insert(
                "dag".to_owned(),
                json!({
                    "fan_out": FAN_OUT,
                    "start_step": summary(&dag.start),
                    "fan_out_span": summary(&dag.fan_out),
                    "branch_spread": summary(&dag.spread),
                    "gate": summary(&dag.gate),
                    "fan_in_step": summary(&dag.fan_in),
                }),
            );
        }
        value
    }
}

/// The DAG's critical path, one row per segment (see `figures`).
fn print_dag(dag: &DagPath) {
    println!("  critical path of a run:");
    print_row("    start step", &dag.start, "");
    print_row("    fan-out (start → last branch in)", &dag.fan_out, "");
    print_row("      first → last branch accepted", &dag.spread, "results applied one at a time");
    print_row("    gate (assigned → verdict applied)", &dag.gate, "");
    print_row("    fan-in step", &dag.fan_in, "");
}

fn summary(s: &Summary) -> serde_json::Value {
    json!({ "count": s.count, "p50_ms": s.p50, "p99_ms": s.p99, "max_ms": s.max })
}

/// One latency row of the table: label, p50, p99, max, then the throughput text.
fn print_row(label: &str, latency: &Summary, throughput: &str) {
    let row = format!("{label:<38} {:>9} {:>9} {:>9}  {throughput}", ms(latency.p50), ms(latency.p99), ms(latency.max));
    println!("{}", row.trim_end());
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
