//! The figures of one measured shape, drawn from the finished run snapshots and the children's
//! CPU time.
//!
//! Every timestamp read here was taken by the orchestrator (a step's `started_at` when the
//! transition that dispatched it was decided, its `finished_at` when the transition that
//! accepted its result was decided), so no two clocks are ever compared. For the DAG, the same
//! timestamps split a run along its critical path:
//!
//! ```text
//!  start.started ─start─▶ start.finished ─fan-out─▶ last branch finished ─gate─▶ fan-in.started ─fan-in─▶ run finished
//!                                      first branch finished ─spread─┘
//! ```
//!
//! The gate segment runs from the transition that sent the gate (applying the last branch's
//! result) to the one that applied its verdict and dispatched the fan-in step: the gate's whole
//! round trip, assigned → verdict applied.

use super::fleet::{CLOCK_TICKS, Fleet, Proc};
use super::protocols::{FAN_IN, FAN_OUT, START, Shape, branch_id};
use jiff::Timestamp;
use muster_schemas::run::{RunSnapshot, RunState, StepRecord, StepState};

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

/// CPU time of the children, in clock ticks, so that the cost of a step can be told apart from
/// its latency.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cpu {
    /// The orchestrator.
    pub(super) orchestrator: Option<u64>,
    /// All agents together.
    pub(super) agents: Option<u64>,
    /// The private nats-server (none with `--nats`).
    pub(super) server: Option<u64>,
}

impl Cpu {
    /// The children's CPU time so far; taken before and after each shape's measured runs.
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

/// What one shape's measured runs showed.
pub(super) struct Muster {
    /// The shape measured.
    pub(super) shape: Shape,
    /// Steps per run of that shape.
    pub(super) steps_per_run: u32,
    /// Measured runs that finished.
    pub(super) runs: usize,
    /// Of those, the ones that did not succeed (they make the exit code non-zero).
    pub(super) failed_runs: usize,
    /// Succeeded steps, dispatch to result accepted.
    pub(super) step: Summary,
    /// Gate verdicts the orchestrator applied.
    pub(super) verdicts: usize,
    /// The program's own run time as the agent measured it (whole milliseconds), to tell the
    /// work from the machinery around it.
    pub(super) exec: Summary,
    /// Runs, start to finish.
    pub(super) run: Summary,
    /// First trigger to last run finished.
    pub(super) wall_seconds: f64,
    /// The children's CPU time over the measured runs.
    pub(super) cpu: Cpu,
    /// The DAG's critical path, for the DAG shape.
    pub(super) dag: Option<DagPath>,
}

impl Muster {
    /// Succeeded steps per second of wall time.
    pub(super) fn steps_per_second(&self) -> f64 {
        self.step.count as f64 / self.wall_seconds
    }

    /// Finished runs per second of wall time.
    pub(super) fn runs_per_second(&self) -> f64 {
        self.runs as f64 / self.wall_seconds
    }

    /// Step results and gate verdicts the orchestrator applied per second of wall time. It
    /// applies them one at a time, so the inverse is the wall time of one transition when it is
    /// kept busy.
    pub(super) fn applied_per_second(&self) -> f64 {
        (self.step.count + self.verdicts) as f64 / self.wall_seconds
    }

    /// CPU milliseconds per measured step.
    pub(super) fn cpu_ms_per_step(&self, ticks: Option<u64>) -> Option<f64> {
        let steps = self.step.count;
        (steps > 0).then_some(())?;
        Some(ticks? as f64 * 1000.0 / CLOCK_TICKS / steps as f64)
    }
}

/// A DAG run split along its critical path (see the module documentation), one sample per
/// succeeded run.
pub(super) struct DagPath {
    /// The start step, dispatch → result accepted.
    pub(super) start: Summary,
    /// Start accepted → last branch accepted: eight dispatches, eight programs, eight results
    /// applied one after the other.
    pub(super) fan_out: Summary,
    /// First branch accepted → last branch accepted: how far apart the orchestrator took in
    /// results that were all ready at about the same time.
    pub(super) spread: Summary,
    /// Last branch accepted → fan-in dispatched: the gate's round trip.
    pub(super) gate: Summary,
    /// The fan-in step, dispatch → result accepted.
    pub(super) fan_in: Summary,
}

/// One DAG run's segments in milliseconds: start, fan-out, spread, gate, fan-in.
type Segments = [f64; 5];

impl DagPath {
    fn of(runs: &[RunSnapshot]) -> Self {
        let samples: Vec<Segments> = runs.iter().filter_map(segments).collect();
        let column = |i: usize| Summary::of(samples.iter().map(|s| s[i]).collect());
        Self { start: column(0), fan_out: column(1), spread: column(2), gate: column(3), fan_in: column(4) }
    }
}

fn millis(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64() * 1000.0
}

/// The segments of one succeeded DAG run; `None` for a run that did not get through.
fn segments(run: &RunSnapshot) -> Option<Segments> {
    if run.state != RunState::Succeeded {
        return None;
    }
    let step = |id: &str| run.steps.iter().find(|s| s.id == id);
    let span = |s: &StepRecord| Some((s.started_at?, s.finished_at?));
    let (start_began, start_done) = span(step(START)?)?;
    let (fan_in_began, fan_in_done) = span(step(FAN_IN)?)?;
    let branches: Vec<Timestamp> =
        (0..FAN_OUT).map(|i| step(&branch_id(i)).and_then(|s| s.finished_at)).collect::<Option<_>>()?;
    let first = *branches.iter().min()?;
    let last = *branches.iter().max()?;
    Some([
        millis(start_began, start_done),
        millis(start_done, last),
        millis(first, last),
        millis(last, fan_in_began),
        millis(fan_in_began, fan_in_done),
    ])
}

/// The figures of one shape's finished runs.
pub(super) fn summarise(
    shape: Shape,
    steps_per_run: u32,
    runs: &[RunSnapshot],
    first_trigger: Timestamp,
    cpu: Cpu,
) -> Muster {
    let succeeded = || runs.iter().flat_map(|r| &r.steps).filter(|s| s.state == StepState::Succeeded);
    let step = succeeded().filter_map(|s| Some(millis(s.started_at?, s.finished_at?))).collect();
    let exec = succeeded().filter_map(|s| Some(s.duration_ms? as f64)).collect();
    let run_times = runs.iter().filter_map(|r| Some(millis(r.started_at, r.finished_at?))).collect();
    let last = runs.iter().filter_map(|r| r.finished_at).max().unwrap_or(first_trigger);
    Muster {
        shape,
        steps_per_run,
        runs: runs.len(),
        failed_runs: runs.iter().filter(|r| r.state != RunState::Succeeded).count(),
        step: Summary::of(step),
        verdicts: runs.iter().flat_map(|r| &r.gates).filter(|g| g.verdict.is_some()).count(),
        exec: Summary::of(exec),
        run: Summary::of(run_times),
        wall_seconds: millis(first_trigger, last) / 1000.0,
        cpu,
        dag: (shape == Shape::Dag).then(|| DagPath::of(runs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::engine;

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = Summary::of((1..=100).map(f64::from).rev().collect());
        assert_eq!((s.count, s.p50, s.p99, s.max), (100, 50.0, 99.0, 100.0));
        assert!(Summary::of(Vec::new()).p50.is_nan());
    }

    #[test]
    fn a_dag_run_splits_along_its_critical_path() {
        let at = |ms: i64| Timestamp::UNIX_EPOCH.checked_add(jiff::SignedDuration::from_millis(ms)).unwrap();
        let yaml = super::super::protocols::dag_yaml("d", FAN_OUT);
        let protocol = muster_schemas::protocol::parse_protocol("d.yaml", &yaml).unwrap();
        let mut run = engine::new_run(uuid::Uuid::nil(), protocol, Default::default(), at(0));
        let mut set = |id: &str, from: i64, to: i64| {
            let step = run.steps.iter_mut().find(|s| s.id == id).unwrap();
            (step.started_at, step.finished_at, step.state) = (Some(at(from)), Some(at(to)), StepState::Succeeded);
        };
        set(START, 0, 2);
        for i in 0..FAN_OUT {
            set(&branch_id(i), 2, 5 + i as i64);
        }
        set(FAN_IN, 20, 23);
        (run.state, run.finished_at) = (RunState::Succeeded, Some(at(23)));
        assert_eq!(segments(&run), Some([2.0, 10.0, 7.0, 8.0, 3.0]));
        run.state = RunState::Failed;
        assert_eq!(segments(&run), None);
    }
}
