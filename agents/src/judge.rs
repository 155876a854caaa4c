//! Judging a quality gate: each criterion is a CEL expression over the facts the orchestrator
//! sent (inputs, outputs, metrics). An unmet criterion fails the gate (or only warns, for
//! warn-only ones); one that cannot be evaluated makes it inconclusive. Every criterion's
//! evidence is returned, met or not, so people see why.

use muster_schemas::message::{Evidence, GateAssigned, Verdict};
use muster_schemas::protocol::expr::{self, Variables};

/// The verdict and the evidence for each criterion.
pub fn judge(work: &GateAssigned) -> (Verdict, Vec<Evidence>) {
    let variables: Variables = match &work.facts {
        serde_json::Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Variables::new(),
    };
    let mut evidence = Vec::new();
    let (mut failed, mut warned, mut unknown) = (false, false, false);
    for criterion in &work.criteria {
        let outcome = expr::compile(&criterion.expr).and_then(|c| c.evaluate_bool(&variables));
        let (met, detail) = match outcome {
            Ok(met) => (Some(met), criterion.expr.clone()),
            Err(problem) => (None, format!("{}: could not be evaluated: {problem}", criterion.expr)),
        };
        match met {
            Some(false) if criterion.warn_only => warned = true,
            Some(false) => failed = true,
            None => unknown = true,
            Some(true) => {}
        }
        evidence.push(Evidence { name: criterion.name.clone(), met, detail });
    }
    let verdict = if failed {
        Verdict::Fail
    } else if unknown {
        Verdict::Inconclusive
    } else if warned {
        Verdict::Warn
    } else {
        Verdict::Pass
    };
    (verdict, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_schemas::Role;
    use muster_schemas::message::CriterionSpec;
    use uuid::Uuid;

    fn gate(criteria: &[(&str, &str, bool)]) -> GateAssigned {
        GateAssigned {
            run_id: Uuid::nil(),
            gate_id: "qg".into(),
            owner: Role::Sre,
            attempt: 1,
            criteria: criteria
                .iter()
                .map(|(n, e, w)| CriterionSpec { name: (*n).into(), expr: (*e).into(), warn_only: *w })
                .collect(),
            facts: serde_json::json!({"outputs": {"scan": {"critical": 0, "cvss": 5.5}}, "metrics": {"drift": 12.0}, "inputs": {}}),
        }
    }

    #[test]
    fn verdicts_follow_the_worst_criterion() {
        assert_eq!(judge(&gate(&[("clean", "outputs.scan.critical == 0", false)])).0, Verdict::Pass);
        assert_eq!(
            judge(&gate(&[("clean", "outputs.scan.critical == 0", false), ("drift", "metrics.drift <= 10.0", true)])).0,
            Verdict::Warn
        );
        assert_eq!(
            judge(&gate(&[("cvss", "outputs.scan.cvss < 5.0", false), ("drift", "metrics.drift <= 10.0", true)])).0,
            Verdict::Fail
        );
        let (verdict, evidence) = judge(&gate(&[
            ("missing", "outputs.nothere.x == 1", false),
            ("clean", "outputs.scan.critical == 0", false),
        ]));
        assert_eq!(verdict, Verdict::Inconclusive);
        assert_eq!(evidence[0].met, None);
        assert!(evidence[0].detail.contains("could not be evaluated"));
        assert_eq!(evidence[1].met, Some(true));
    }
}
