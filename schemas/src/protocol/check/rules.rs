//! Per-construct rules: one action per step, human steps that someone can answer, options that
//! exist, ladders whose deadlines come in order, SLOs and triggers that make sense.

use super::index::Index;
use super::{Report, at, is_identifier, segs};
use crate::protocol::load::did_you_mean;
use crate::protocol::located::Seg;
use crate::protocol::model::action::{ACTION_KEYS, HasAction};
use crate::protocol::model::oversight::{GateAction, Threshold};
use crate::protocol::model::{
    ActionRef, DecisionOption, EscalationCondition, FieldSpec, FieldType, Ladder, Literal, OnFailure, OutputSource,
    Protocol, Responders, Trigger,
};
use std::collections::BTreeSet;

pub(crate) fn check(protocol: &Protocol, index: &Index<'_>, report: &mut Report) {
    let mut rules = Rules { protocol, index, report };
    for (name, field) in &protocol.inputs {
        rules.field(segs!["inputs", name.as_str()], name, field);
    }
    for s in &index.steps {
        rules.step(&s.path, s.step);
    }
    for (g, gate) in protocol.gates.iter().enumerate() {
        let base = segs!["gates", g];
        if gate.criteria.is_empty() {
            rules.report.error(at(&base, segs!["criteria"]), format!("gate `{}` has no criteria", gate.id));
        }
        let mut names = BTreeSet::new();
        for (c, criterion) in gate.criteria.iter().enumerate() {
            if !names.insert(criterion.name.as_str()) {
                rules.report.error(
                    at(&base, segs!["criteria", c, "name"]),
                    format!("duplicate criterion `{}` in gate `{}`", criterion.name, gate.id),
                );
            }
        }
        for (outcome, action) in [
            ("pass", &gate.on.pass),
            ("warn", &gate.on.warn),
            ("fail", &gate.on.fail),
            ("inconclusive", &gate.on.inconclusive),
        ] {
            if let GateAction::Escalate(id) = action {
                rules.escalation_ref(at(&base, segs!["on", outcome]), id);
            }
        }
    }
    if let Some(ladder) = &protocol.ladder {
        rules.ladder(segs!["ladder"], ladder);
    }
    for (e, esc) in protocol.escalations.iter().enumerate() {
        let base = segs!["escalations", e];
        rules.options(&base, &esc.options, esc.default.as_deref(), Some(&esc.fallback));
        rules.responders(at(&base, segs!["responders"]), &esc.responders, &format!("escalation `{}`", esc.id));
        if let Some(ladder) = &esc.ladder {
            rules.ladder(at(&base, segs!["ladder"]), ladder);
        }
        match &esc.when {
            Some(condition) => rules.condition(&at(&base, segs!["when"]), condition),
            None if !raised_by_reference(protocol, &esc.id) => rules.report.error_hint(
                at(&base, segs!["id"]),
                format!("escalation `{}` is never raised: it has no `when` and nothing escalates to it", esc.id),
                "add `when:`, or name it in a step's `on_failure: {escalate: ...}` or a gate outcome",
            ),
            None => {}
        }
    }
    for (i, slo) in protocol.slos.iter().enumerate() {
        let base = segs!["slos", i];
        match (&slo.duration, &slo.metric) {
            (Some(d), None) => {
                if d.of != "run" && !index.is_step_or_phase(&d.of) {
                    rules.report.error(
                        at(&base, segs!["duration", "of"]),
                        format!("SLO `{}` measures unknown step or phase `{}`", slo.id, d.of),
                    );
                }
                if !(1..=100).contains(&d.percentile) {
                    rules
                        .report
                        .error(at(&base, segs!["duration", "percentile"]), "percentile must be between 1 and 100");
                }
            }
            (None, Some(m)) => {
                if !protocol.metrics.contains_key(&m.name) {
                    rules.report.error_hint(
                        at(&base, segs!["metric", "name"]),
                        format!("SLO `{}` uses undeclared metric `{}`", slo.id, m.name),
                        "declare it under `metrics:`",
                    );
                }
                if [m.at_least, m.at_most].iter().flatten().any(|v| !v.is_finite()) {
                    rules.report.error(at(&base, segs!["metric"]), "objective bounds must be finite numbers");
                }
                if m.at_least.is_none() && m.at_most.is_none() {
                    rules.report.error(at(&base, segs!["metric"]), "a metric objective needs `at_least` or `at_most`");
                }
            }
            _ => rules.report.error_hint(
                base.clone(),
                format!("SLO `{}` needs exactly one objective", slo.id),
                "set either `duration:` or `metric:`",
            ),
        }
    }
    for (t, trigger) in protocol.triggers.iter().enumerate() {
        match trigger {
            Trigger::Cron(cron) => {
                if let Err(err) = cron.schedule.parse::<croner::Cron>() {
                    rules.report.error_hint(
                        segs!["triggers", t, "cron", "schedule"],
                        format!("invalid cron schedule `{}`: {err}", cron.schedule),
                        "five fields: minute hour day-of-month month day-of-week, e.g. `0 3 * * *`",
                    );
                }
            }
            Trigger::Subject(subject) => {
                if subject.subject.is_empty() || subject.subject.contains(char::is_whitespace) {
                    rules.report.error(
                        segs!["triggers", t, "subject", "subject"],
                        format!("`{}` is not a NATS subject", subject.subject),
                    );
                }
            }
            Trigger::Webhook(hook) => {
                if hook.secret_env.is_empty()
                    || !hook.secret_env.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                {
                    rules.report.error(
                        segs!["triggers", t, "webhook", "secret_env"],
                        format!("`{}` is not an environment variable name", hook.secret_env),
                    );
                }
            }
            Trigger::Manual(_) => {}
        }
    }
    for (f, scenario) in protocol.failure_scenarios.iter().enumerate() {
        if scenario.handled_by.is_empty() {
            rules.report.error(
                segs!["failure_scenarios", f, "handled_by"],
                format!("failure scenario `{}` is handled by nothing", scenario.id),
            );
        }
        for (h, handler) in scenario.handled_by.iter().enumerate() {
            if !rules.handler_exists(handler) {
                rules.report.error_hint(
                    segs!["failure_scenarios", f, "handled_by", h],
                    format!("`{handler}` is not a step, `<step>.<alternative>`, `<step>.rollback`, gate or escalation"),
                    "name what handles this scenario",
                );
            }
        }
    }
    for name in protocol.groups.keys() {
        if !is_identifier(name) {
            rules
                .report
                .error(segs!["groups", name.as_str()], format!("group name `{name}` is not a valid identifier"));
        }
    }
}

/// Whether a step's `on_failure` or a gate outcome escalates to `id`.
fn raised_by_reference(protocol: &Protocol, id: &str) -> bool {
    let by_step = protocol.all_steps().any(|(_, s)| matches!(&s.on_failure, Some(OnFailure::Escalate(e)) if e == id));
    let by_gate = protocol.gates.iter().any(|g| {
        [&g.on.pass, &g.on.warn, &g.on.fail, &g.on.inconclusive]
            .iter()
            .any(|a| matches!(a, GateAction::Escalate(e) if e == id))
    });
    by_step || by_gate
}

struct Rules<'c, 'a> {
    protocol: &'a Protocol,
    index: &'c Index<'a>,
    report: &'c mut Report,
}

impl Rules<'_, '_> {
    fn one_action(&mut self, base: &[Seg], actions: &[ActionRef<'_>], what: &str) {
        match actions {
            [] => self.report.error_hint(
                base.to_vec(),
                format!("{what} has no action"),
                format!("add one of: {}", ACTION_KEYS.join(", ")),
            ),
            [_] => {}
            many => self.report.error_hint(
                base.to_vec(),
                format!(
                    "{what} has {} actions ({})",
                    many.len(),
                    many.iter().map(ActionRef::key).collect::<Vec<_>>().join(", ")
                ),
                "a step does one thing: split it into steps, or make one an alternative",
            ),
        }
    }

    fn step(&mut self, base: &[Seg], step: &crate::protocol::model::Step) {
        let what = format!("step `{}`", step.id);
        self.one_action(base, &step.actions(), &what);
        if let Some(action) = step.action() {
            self.action(base, action, &what);
            for (name, output) in &step.outputs {
                let fits = match output.from {
                    OutputSource::Answer => action.is_human(),
                    OutputSource::Probe => matches!(action, ActionRef::Http(_) | ActionRef::Tcp(_) | ActionRef::Tls(_)),
                    OutputSource::StdoutJson | OutputSource::File => matches!(action, ActionRef::Exec(_)),
                };
                if !fits {
                    self.report.error(
                        at(base, segs!["outputs", name.as_str(), "from"]),
                        format!("output `{name}` cannot come from a `{}` action this way", action.key()),
                    );
                }
            }
        }
        if let Some(retry) = &step.retry {
            if retry.max_attempts == 0 {
                self.report.error_hint(
                    at(base, segs!["retry", "max_attempts"]),
                    "max_attempts must be at least 1",
                    "it counts the first attempt too",
                );
            }
            if retry.jitter.is_some_and(|j| !(0.0..=1.0).contains(&j)) {
                self.report.error(at(base, segs!["retry", "jitter"]), "jitter is a fraction between 0.0 and 1.0");
            }
            if let (Some(initial), Some(max)) = (retry.initial, retry.max)
                && initial > max
            {
                self.report.error(
                    at(base, segs!["retry", "initial"]),
                    format!("initial delay {initial} is longer than max {max}"),
                );
            }
        }
        let mut alt_ids = BTreeSet::new();
        for (a, alt) in step.alternatives.iter().enumerate() {
            let alt_path = at(base, segs!["alternatives", a]);
            if !alt_ids.insert(alt.id.as_str()) {
                self.report.error(
                    at(&alt_path, segs!["id"]),
                    format!("duplicate alternative `{}` in step `{}`", alt.id, step.id),
                );
            }
            let alt_what = format!("alternative `{}` of step `{}`", alt.id, step.id);
            self.one_action(&alt_path, &alt.actions(), &alt_what);
            if let Some(action) = alt.action() {
                self.action(&alt_path, action, &alt_what);
            }
        }
        if let Some(rollback) = &step.rollback {
            let rb_path = at(base, segs!["rollback"]);
            let rb_what = format!("the rollback of step `{}`", step.id);
            self.one_action(&rb_path, &rollback.actions(), &rb_what);
            if let Some(action) = rollback.action() {
                self.action(&rb_path, action, &rb_what);
            }
        }
        if let Some(OnFailure::Escalate(id)) = &step.on_failure {
            self.escalation_ref(at(base, segs!["on_failure", "escalate"]), id);
        }
        if matches!(step.on_failure, Some(OnFailure::Rollback))
            && step.rollback.is_none()
            && self.no_rollback_anywhere()
        {
            self.report.error_hint(
                at(base, segs!["on_failure"]),
                format!("step `{}` rolls back on failure, but no step declares a `rollback`", step.id),
                "add `rollback:` actions to the steps whose effects must be undone",
            );
        }
    }

    fn no_rollback_anywhere(&self) -> bool {
        self.index.steps.iter().all(|s| s.step.rollback.is_none())
    }

    fn action(&mut self, base: &[Seg], action: ActionRef<'_>, what: &str) {
        match action {
            ActionRef::Exec(exec) => match (&exec.program, &exec.shell) {
                (Some(program), None) if program.trim().is_empty() => {
                    self.report.error(at(base, segs!["exec", "program"]), "`program` is empty")
                }
                (Some(_), None) => {}
                (None, Some(script)) => {
                    if crate::protocol::template::is_template(script) {
                        self.report.error_hint(
                            at(base, segs!["exec", "shell"]),
                            "templates are not allowed in `shell:` (rendered data would be parsed by the shell)",
                            "pass values through `env:` and read them as \"$NAME\" in the script",
                        );
                    }
                    if !exec.args.is_empty() {
                        self.report.error(at(base, segs!["exec", "args"]), "`args` goes with `program`, not `shell`");
                    }
                }
                _ => self.report.error_hint(
                    at(base, segs!["exec"]),
                    format!("{what}: `exec` needs exactly one of `program` and `shell`"),
                    "prefer `program` + `args`: no shell, no quoting",
                ),
            },
            ActionRef::Http(http) => {
                const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
                if !METHODS.contains(&http.method.as_str()) {
                    self.report.error_hint(
                        at(base, segs!["http", "method"]),
                        format!("unknown HTTP method `{}`", http.method),
                        format!("one of {}", METHODS.join(", ")),
                    );
                }
                if let Some(code) = http.expect.status.iter().find(|c| !(100..=599).contains(*c)) {
                    self.report
                        .error(at(base, segs!["http", "expect", "status"]), format!("{code} is not an HTTP status"));
                }
                if let Some(pattern) = &http.expect.body_matches
                    && let Err(err) = regex::Regex::new(pattern)
                {
                    self.report.error(
                        at(base, segs!["http", "expect", "body_matches"]),
                        format!("invalid regular expression: {err}"),
                    );
                }
            }
            ActionRef::Tcp(_) | ActionRef::Tls(_) => {}
            ActionRef::Wait(wait) => {
                if wait.duration.is_some() == wait.until.is_some() {
                    self.report.error_hint(
                        at(base, segs!["wait"]),
                        format!("{what}: `wait` needs exactly one of `duration` and `until`"),
                        "e.g. `wait: { duration: 5m }`",
                    );
                }
            }
            ActionRef::Form(form) => {
                if form.fields.is_empty() {
                    self.report.error(at(base, segs!["form", "fields"]), format!("{what}: the form has no fields"));
                }
                for (name, field) in &form.fields {
                    self.field(at(base, segs!["form", "fields", name.as_str()]), name, field);
                }
                self.responders(at(base, segs!["form", "responders"]), &form.responders, what);
            }
            ActionRef::Approval(approval) => {
                self.responders(at(base, segs!["approval", "approvers"]), &approval.approvers, what);
                if approval.approvers.is_empty() {
                    // Reported above as "nobody may answer"; a quorum error would only repeat it.
                } else if approval.quorum == 0 {
                    self.report.error(at(base, segs!["approval", "quorum"]), "quorum must be at least 1");
                } else if approval.approvers.groups.is_empty()
                    && approval.quorum as usize > approval.approvers.users.len()
                {
                    self.report.error_hint(
                        at(base, segs!["approval", "quorum"]),
                        format!(
                            "quorum {} is more than the {} listed approvers",
                            approval.quorum,
                            approval.approvers.users.len()
                        ),
                        "lower the quorum or list more approvers",
                    );
                }
            }
            ActionRef::Decision(decision) => {
                self.options(
                    &at(base, segs!["decision"]),
                    &decision.options,
                    decision.default.as_deref(),
                    decision.fallback.as_ref(),
                );
                self.responders(at(base, segs!["decision", "responders"]), &decision.responders, what);
            }
            ActionRef::Manual(manual) => {
                self.responders(at(base, segs!["manual", "responders"]), &manual.responders, what)
            }
        }
    }

    fn options(&mut self, base: &[Seg], options: &[DecisionOption], default: Option<&str>, fallback: Option<&String>) {
        if options.is_empty() {
            self.report.error(at(base, segs!["options"]), "there are no options to choose from");
        }
        let mut ids = BTreeSet::new();
        for (o, option) in options.iter().enumerate() {
            if !is_identifier(&option.id) {
                self.report.error(
                    at(base, segs!["options", o, "id"]),
                    format!("option id `{}` is not a valid identifier", option.id),
                );
            }
            if !ids.insert(option.id.as_str()) {
                self.report.error(at(base, segs!["options", o, "id"]), format!("duplicate option `{}`", option.id));
            }
        }
        for (key, chosen) in [("default", default), ("fallback", fallback.map(String::as_str))] {
            if let Some(chosen) = chosen
                && !ids.contains(chosen)
            {
                let hint = did_you_mean(chosen, ids.iter().copied()).map_or_else(
                    || format!("options: {}", ids.iter().copied().collect::<Vec<_>>().join(", ")),
                    |b| format!("did you mean `{b}`?"),
                );
                self.report.error_hint(
                    at(base, segs![key]),
                    format!("{key} `{chosen}` is not one of the options"),
                    hint,
                );
            }
        }
    }

    fn responders(&mut self, path: Vec<Seg>, responders: &Responders, what: &str) {
        if responders.is_empty() {
            self.report.error_hint(
                path.clone(),
                format!("nobody may answer {what}"),
                "list `groups` (declared under `groups:`) or `users`",
            );
        }
        for (g, group) in responders.groups.iter().enumerate() {
            if !self.protocol.groups.contains_key(group) {
                let hint = did_you_mean(group, self.protocol.groups.keys().map(String::as_str))
                    .map_or("declare it under `groups:`".to_owned(), |b| format!("did you mean `{b}`?"));
                self.report.error_hint(at(&path, segs!["groups", g]), format!("unknown group `{group}`"), hint);
            }
        }
    }

    fn escalation_ref(&mut self, path: Vec<Seg>, id: &str) {
        if !self.index.escalations.contains(id) {
            let hint = did_you_mean(id, self.index.escalations.iter().copied())
                .map_or("escalations are declared under `escalations:`".to_owned(), |b| format!("did you mean `{b}`?"));
            self.report.error_hint(path, format!("unknown escalation `{id}`"), hint);
        }
    }

    fn ladder(&mut self, path: Vec<Seg>, ladder: &Ladder) {
        let stages = [
            ("notify", ladder.notify),
            ("triage", ladder.triage),
            ("decide", ladder.decide),
            ("fallback", ladder.fallback),
        ];
        for pair in stages.windows(2) {
            if pair[0].1 > pair[1].1 {
                self.report.error_hint(
                    at(&path, segs![pair[1].0]),
                    format!(
                        "the ladder's `{}` ({}) comes before its `{}` ({})",
                        pair[1].0, pair[1].1, pair[0].0, pair[0].1
                    ),
                    "deadlines must grow: notify ≤ triage ≤ decide ≤ fallback",
                );
            }
        }
    }

    fn condition(&mut self, base: &[Seg], condition: &EscalationCondition) {
        match condition {
            EscalationCondition::RunningLonger { target, threshold } => {
                if target != "run" && !self.index.is_step_or_phase(target) {
                    self.report.error_hint(
                        at(base, segs!["running_longer", "target"]),
                        format!("unknown step or phase `{target}`"),
                        "name a step, a phase, or `run`",
                    );
                }
                if let Threshold::ByInput(by) = threshold {
                    let tpath = at(base, segs!["running_longer", "threshold", "input"]);
                    match self.protocol.inputs.get(&by.input) {
                        None => self.report.error_hint(
                            tpath,
                            format!("threshold depends on undeclared input `{}`", by.input),
                            "declare it under `inputs:` (an enum)",
                        ),
                        Some(input) if input.kind == FieldType::Enum => {
                            for value in by.values.keys().filter(|v| !input.values.contains(v)) {
                                self.report.error(
                                    at(base, segs!["running_longer", "threshold", "values", value.as_str()]),
                                    format!(
                                        "`{value}` is not a value of input `{}` ({})",
                                        by.input,
                                        input.values.join(", ")
                                    ),
                                );
                            }
                        }
                        Some(_) => self
                            .report
                            .error(tpath, format!("input `{}` must be an enum to select thresholds", by.input)),
                    }
                }
            }
            EscalationCondition::ConsecutiveFailures { step, count } => {
                if !self.index.by_id.contains_key(step.as_str()) {
                    self.report
                        .error(at(base, segs!["consecutive_failures", "step"]), format!("unknown step `{step}`"));
                }
                if *count == 0 {
                    self.report.error(at(base, segs!["consecutive_failures", "count"]), "count must be at least 1");
                }
            }
            EscalationCondition::Gate { gate, .. } => {
                if !self.index.gates.contains(gate.as_str()) {
                    self.report.error(at(base, segs!["gate", "gate"]), format!("unknown gate `{gate}`"));
                }
            }
            EscalationCondition::Expr(_) => {}
        }
    }

    fn handler_exists(&self, handler: &str) -> bool {
        if self.index.by_id.contains_key(handler)
            || self.index.gates.contains(handler)
            || self.index.escalations.contains(handler)
        {
            return true;
        }
        let Some((step, part)) = handler.split_once('.') else { return false };
        let Some(&i) = self.index.by_id.get(step) else { return false };
        let step = self.index.steps[i].step;
        (part == "rollback" && step.rollback.is_some()) || step.alternatives.iter().any(|a| a.id == part)
    }

    fn field(&mut self, path: Vec<Seg>, name: &str, field: &FieldSpec) {
        if !is_identifier(name) {
            self.report.error_hint(
                path.clone(),
                format!("field name `{name}` is not a valid identifier"),
                "use lowercase letters, digits, `-` and `_`",
            );
        }
        match field.kind {
            FieldType::Enum if field.values.is_empty() => self.report.error_hint(
                at(&path, segs!["values"]),
                format!("enum `{name}` has no values"),
                "list them under `values:`",
            ),
            FieldType::List if field.items.is_none() => self.report.error_hint(
                at(&path, segs!["items"]),
                format!("list `{name}` does not say its item type"),
                "add `items: { type: string }`",
            ),
            FieldType::Object if field.fields.is_empty() => self.report.error_hint(
                at(&path, segs!["fields"]),
                format!("object `{name}` has no fields"),
                "add `fields:`",
            ),
            _ => {}
        }
        for (key, bound) in [("min", field.min), ("max", field.max)] {
            if bound.is_some_and(|b| !b.is_finite()) {
                self.report.error(at(&path, segs![key]), format!("`{key}` of `{name}` is not a finite number"));
            }
        }
        if let Some(Literal::Number(n)) = &field.default
            && !n.is_finite()
        {
            self.report.error(at(&path, segs!["default"]), format!("default of `{name}` is not a finite number"));
        }
        if let (Some(min), Some(max)) = (field.min, field.max)
            && min > max
        {
            self.report.error(at(&path, segs!["min"]), format!("min {min} is larger than max {max}"));
        }
        if let Some(pattern) = &field.pattern
            && let Err(err) = regex::Regex::new(pattern)
        {
            self.report.error(at(&path, segs!["pattern"]), format!("invalid regular expression: {err}"));
        }
        if let Some(default) = &field.default
            && let Some(problem) = literal_mismatch(field, default)
        {
            self.report.error(at(&path, segs!["default"]), format!("default of `{name}` {problem}"));
        }
        if let Some(items) = &field.items {
            self.field(at(&path, segs!["items"]), name, items);
        }
        for (child, spec) in &field.fields {
            self.field(at(&path, segs!["fields", child.as_str()]), child, spec);
        }
    }
}

/// Why a literal does not fit a field, if it does not.
pub(crate) fn literal_mismatch(field: &FieldSpec, value: &Literal) -> Option<String> {
    match (field.kind, value) {
        (FieldType::String, Literal::Str(_))
        | (FieldType::Int, Literal::Int(_))
        | (FieldType::Number, Literal::Int(_) | Literal::Number(_))
        | (FieldType::Bool, Literal::Bool(_))
        | (FieldType::List, Literal::List(_))
        | (FieldType::Object, Literal::Map(_)) => None,
        (FieldType::Enum, Literal::Str(s)) if field.values.contains(s) => None,
        (FieldType::Enum, other) => Some(format!("is `{other}`, not one of {}", field.values.join(", "))),
        (FieldType::Duration, Literal::Str(s)) => s.parse::<crate::protocol::model::DurationSpec>().err(),
        (kind, other) => Some(format!("is `{other}`, not a {}", kind.as_str())),
    }
}
