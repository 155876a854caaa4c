//! The DAG: every `needs` names something that exists, nothing depends on itself through a
//! cycle (the cycle is printed), and every step can run.

use super::index::Index;
use super::{Report, at, segs};
use crate::protocol::load::did_you_mean;
use crate::protocol::model::Protocol;
use std::collections::BTreeSet;

pub(crate) fn check(protocol: &Protocol, index: &Index<'_>, report: &mut Report) {
    for s in &index.steps {
        for (n, need) in s.step.needs.iter().enumerate() {
            if need == &s.step.id {
                report.error(at(&s.path, segs!["needs", n]), format!("step `{need}` needs itself"));
            } else if !index.by_id.contains_key(need.as_str()) {
                let hint = match did_you_mean(need, index.by_id.keys().copied()) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None if index.phases.contains_key(need.as_str()) => {
                        format!("`{need}` is a phase: put it in the phase's `needs` instead")
                    }
                    None => "`needs` lists ids of other steps".to_owned(),
                };
                report.error_hint(
                    at(&s.path, segs!["needs", n]),
                    format!("step `{}` needs unknown step `{need}`", s.step.id),
                    hint,
                );
            }
        }
    }
    for (p, phase) in protocol.phases.iter().enumerate() {
        for (n, need) in phase.needs.iter().enumerate() {
            if !index.phases.contains_key(need.as_str()) {
                let hint = match did_you_mean(need, index.phases.keys().copied()) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "a phase's `needs` lists ids of other phases".to_owned(),
                };
                report.error_hint(
                    segs!["phases", p, "needs", n],
                    format!("phase `{}` needs unknown phase `{need}`", phase.id),
                    hint,
                );
            }
        }
    }
    let phase_ids: Vec<&str> = protocol.phases.iter().map(|p| p.id.as_str()).collect();
    let phase_deps: Vec<BTreeSet<usize>> = protocol
        .phases
        .iter()
        .map(|p| p.needs.iter().filter_map(|n| phase_ids.iter().position(|id| id == n)).collect())
        .collect();
    let mut in_cycle = BTreeSet::new();
    for cycle in cycles(&phase_deps) {
        let names: Vec<&str> = cycle.iter().map(|&i| phase_ids[i]).collect();
        report.error_hint(
            segs!["phases", cycle[0], "needs"],
            format!("phases form a cycle: {} → {}", names.join(" → "), names[0]),
            "remove one of these `needs`",
        );
    }
    for cycle in cycles(&index.deps) {
        let names: Vec<&str> = cycle.iter().map(|&i| index.steps[i].step.id.as_str()).collect();
        report.error_hint(
            at(&index.steps[cycle[0]].path, segs!["needs"]),
            format!("steps form a cycle: {} → {}", names.join(" ← needs "), names[0]),
            "a step cannot (even through phases) need a step that needs it; remove one of these `needs`",
        );
        in_cycle.extend(cycle);
    }
    for (i, s) in index.steps.iter().enumerate() {
        if s.step.when.as_deref().is_some_and(|w| w.trim() == "false") {
            report.error_hint(
                at(&s.path, segs!["when"]),
                format!("step `{}` can never run: its condition is `false`", s.step.id),
                "delete the step or fix the condition",
            );
        } else if !in_cycle.contains(&i) && index.ancestors(i).iter().any(|a| in_cycle.contains(a)) {
            report.error_hint(
                at(&s.path, segs!["id"]),
                format!("step `{}` is unreachable: it depends on steps that form a cycle", s.step.id),
                "break the cycle reported above",
            );
        }
    }
    for (g, gate) in protocol.gates.iter().enumerate() {
        for (a, after) in gate.after.iter().enumerate() {
            if !index.is_step_or_phase(after) {
                let candidates = index.by_id.keys().chain(index.phases.keys()).copied();
                let hint = did_you_mean(after, candidates)
                    .map_or("`after` lists step or phase ids".to_owned(), |b| format!("did you mean `{b}`?"));
                report.error_hint(
                    segs!["gates", g, "after", a],
                    format!("gate `{}` is placed after unknown `{after}`", gate.id),
                    hint,
                );
            }
        }
    }
}

/// The elementary cycles found by a depth-first search (one per back edge), each as a list of
/// nodes in dependency order.
fn cycles(deps: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        node: usize,
        deps: &[BTreeSet<usize>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        found: &mut Vec<Vec<usize>>,
    ) {
        marks[node] = Mark::Active;
        stack.push(node);
        for &next in &deps[node] {
            match marks[next] {
                Mark::New => visit(next, deps, marks, stack, found),
                Mark::Active => {
                    if let Some(start) = stack.iter().position(|&n| n == next) {
                        found.push(stack[start..].to_vec());
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[node] = Mark::Done;
    }
    let mut marks = vec![Mark::New; deps.len()];
    let mut found = Vec::new();
    for node in 0..deps.len() {
        if marks[node] == Mark::New {
            visit(node, deps, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::cycles;
    use std::collections::BTreeSet;

    #[test]
    fn finds_each_cycle_once() {
        let deps: Vec<BTreeSet<usize>> = vec![[1].into(), [2].into(), [0].into(), [].into()];
        assert_eq!(cycles(&deps), vec![vec![0, 1, 2]]);
        let dag: Vec<BTreeSet<usize>> = vec![[].into(), [0].into(), [0, 1].into()];
        assert!(cycles(&dag).is_empty());
    }
}
