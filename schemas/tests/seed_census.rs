//! The seed protocols against the numbers in their source documents (`shared/seeds/`), so that
//! nothing the documents state silently falls out of the scenario files. Each expectation names
//! the document section it comes from.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use muster_schemas::protocol::census::Census;
use muster_schemas::protocol::model::action::HasAction;
use muster_schemas::protocol::model::oversight::GateAction;
use muster_schemas::protocol::model::{ActionRef, FieldType, Protocol};
use muster_schemas::protocol::read_protocol;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn load(id: &str) -> (Protocol, Census) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{id}.yaml"));
    let protocol = read_protocol(&path).unwrap_or_else(|e| panic!("{id} must validate:\n{e}"));
    let census = Census::of(&protocol);
    (protocol, census)
}

fn criteria(protocol: &Protocol, gate: &str) -> usize {
    protocol.gates.iter().find(|g| g.id == gate).unwrap_or_else(|| panic!("gate {gate}")).criteria.len()
}

fn with_label(protocol: &Protocol, label: &str) -> usize {
    protocol.all_steps().filter(|(_, s)| s.labels.iter().any(|l| l == label)).count()
}

#[test]
fn seed_000_provision_infrastructure() {
    let (p, census) = load("provision-infrastructure");
    // "Step 1: Requirements Elicitation — MANDATORY": a form covering the six groups of fields.
    let (_, first) = p.all_steps().next().unwrap();
    let Some(ActionRef::Form(form)) = first.action() else { panic!("the first step is the requirements form") };
    let groups: BTreeSet<&str> = form.fields.values().filter_map(|f| f.group.as_deref()).collect();
    assert_eq!(groups.len(), 6, "six groups of requirements: {groups:?}");
    // "Environment Type": Development, Staging, Production, All environments.
    assert!(form.fields.values().any(|f| f.kind == FieldType::Enum && f.values.len() == 4));
    // "Task Workflow": 8 steps, plus the Dependencies section as a prerequisites phase.
    assert_eq!(census.phases, 9);
    // "Success Criteria": 7; "Dependencies": 5.
    assert_eq!(criteria(&p, "success_criteria"), 7);
    assert_eq!(criteria(&p, "dependencies_ready"), 5);
    // "Error Handling": 4 rules (+1 implied budget overrun); security failure blocks activation.
    assert!(census.failure_scenarios >= 4);
    let security = p.gates.iter().find(|g| g.id == "security_validation").unwrap();
    assert_eq!((security.owner.as_str(), &security.on.fail), ("security", &GateAction::Block));
    assert!(
        census.retries > 0 && census.alternatives > 0 && census.rollbacks > 0,
        "retry, then alternatives, then rollback"
    );
}

#[test]
fn seed_001_infrastructure_tasks() {
    let (p, census) = load("infrastructure-tasks");
    // Phases 1–6 with 5, 5, 14, 5, 7, 5 tasks (T001–T041).
    assert_eq!(census.phases, 6);
    let tasks: Vec<usize> = p
        .phases
        .iter()
        .map(|ph| {
            ph.steps
                .iter()
                .filter(|s| s.id.len() == 4 && s.id.starts_with('t') && s.id[1..].chars().all(|c| c.is_ascii_digit()))
                .count()
        })
        .collect();
    assert_eq!(tasks, [5, 5, 14, 5, 7, 5]);
    for n in 1..=41 {
        assert!(p.step(&format!("t{n:03}")).is_some(), "task T{n:03}");
    }
    // 16 tasks marked [P]; user stories US1 14 tasks, US2 5, US3 7.
    assert_eq!(with_label(&p, "parallel"), 16);
    assert_eq!([with_label(&p, "us1"), with_label(&p, "us2"), with_label(&p, "us3")], [14, 5, 7]);
    // Manual approval for production applies.
    assert_eq!(census.approvals, 2);
    // 99.5% availability SLO.
    assert!(p.slos.iter().any(|s| s.metric.as_ref().is_some_and(|m| m.at_least == Some(99.5))));
}

#[test]
fn seed_003_agentic_phase1() {
    let (p, census) = load("agentic-phase1");
    // Five tasks over four weeks (+ prerequisites and sign-off).
    assert_eq!(census.phases, 7);
    // Deliverables per task: 4, 3, 3, 5, 4 (19). Each task's gate checks at least its
    // deliverables; some also carry a risk mitigation as a criterion.
    let gates = [
        "week1_deliverables",
        "week2_deliverables",
        "week3_deliverables",
        "security_infrastructure",
        "week4_deliverables",
    ];
    for (gate, deliverables) in gates.iter().zip([4, 3, 3, 5, 4]) {
        assert!(criteria(&p, gate) >= deliverables, "{gate} checks its {deliverables} deliverables");
    }
    // Risks: 5 per task + 4 global = 9.
    assert_eq!(census.failure_scenarios, 9);
    assert!(census.decisions >= 3, "provider, CI/CD tool and logging are decisions");
}

#[test]
fn seed_004_service_infrastructure() {
    let (p, census) = load("service-infrastructure");
    // Acceptance criteria: must 7, should 6, nice to have 5; 15 security considerations.
    assert_eq!([criteria(&p, "must_have"), criteria(&p, "should_have"), criteria(&p, "nice_to_have")], [7, 6, 5]);
    assert_eq!(criteria(&p, "security_hardening"), 15);
    // Eight task groups (+ prerequisites, security hardening, acceptance).
    assert_eq!(census.phases, 11);
    // 12 success metrics, each with an objective.
    assert!(census.metrics >= 12 && census.slos >= 12, "{census:?}");
    assert!(census.rollbacks > 0 && census.approvals >= 1);
}
