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

#[test]
fn seed_002_p_infrastructure_setup() {
    let (p, census) = load("p-infrastructure-setup");
    // "Steps": 10, each protocol step labelled with the document step it implements.
    for n in 1..=10 {
        assert!(p.all_steps().any(|(_, s)| s.labels.iter().any(|l| *l == format!("step-{n}"))), "document step {n}");
    }
    // "Prerequisites" (QG-PHASE2, before anything): 5; "Validation Criteria" (QG-PHASE3): 8.
    assert_eq!(criteria(&p, "qg_phase2"), 5);
    assert!(p.gates.iter().any(|g| g.id == "qg_phase2" && g.after.is_empty()));
    assert_eq!(criteria(&p, "qg_phase3"), 8);
    // "Automatic Escalation Triggers": 14 (+1 raised by the cascade failure scenario).
    assert!(census.escalations >= 14, "{census:?}");
    use muster_schemas::protocol::model::EscalationCondition;
    use muster_schemas::protocol::model::oversight::Threshold;
    let by_environment = p.escalations.iter().find_map(|e| match &e.when {
        Some(EscalationCondition::RunningLonger { threshold: Threshold::ByInput(by), .. })
            if by.input == "environment" =>
        {
            Some(by)
        }
        _ => None,
    });
    let by = by_environment.expect("provisioning timeout depends on the environment");
    assert_eq!((by.values["development"].0.as_secs(), by.values["staging"].0.as_secs()), (75 * 60, 90 * 60));
    let exprs: Vec<&str> = p
        .escalations
        .iter()
        .filter_map(|e| match &e.when {
            Some(EscalationCondition::Expr(x)) => Some(x.as_str()),
            _ => None,
        })
        .collect();
    assert!(exprs.iter().any(|x| x.contains("7.0")), "CVSS >= 7.0: {exprs:?}");
    assert!(
        p.escalations
            .iter()
            .any(|e| matches!(&e.when, Some(EscalationCondition::ConsecutiveFailures { count: 3, .. }))),
        "pipeline fails 3 times in a row"
    );
    // "HITL Decision Points": 7; "Failure Scenarios": 5.
    assert_eq!(census.decisions, 7);
    assert_eq!(census.failure_scenarios, 5);
    // "Escalation Response Procedures": notify 2 min, triage 15, decide 30, fallback 60, RCA 24 h.
    let ladder = p.ladder.clone().unwrap();
    let minutes = |d: muster_schemas::protocol::DurationSpec| d.0.as_secs() / 60;
    assert_eq!(
        [
            minutes(ladder.notify),
            minutes(ladder.triage),
            minutes(ladder.decide),
            minutes(ladder.fallback),
            minutes(ladder.follow_up)
        ],
        [2, 15, 30, 60, 24 * 60]
    );
    // "Rollback Mechanisms": 6; "Checkpoint Strategy": 4 kinds; "Performance SLOs": 3 + daily drift.
    assert!(census.rollbacks >= 6);
    assert!(census.checkpoints >= 4);
    assert!(census.slos >= 3);
    assert!(
        p.triggers.iter().any(|t| matches!(t, muster_schemas::protocol::model::Trigger::Cron(_))),
        "daily drift detection"
    );
    // "Trigger": 4 ways a run starts (+ the drift cron).
    assert!(census.triggers >= 4);
}
