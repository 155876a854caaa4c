//! References: every template variable and CEL path names something declared, and a step only
//! reads outputs of steps it depends on (otherwise the value may not exist yet).

use super::index::Index;
use super::{Report, at, segs};
use crate::protocol::expr;
use crate::protocol::load::did_you_mean;
use crate::protocol::located::Seg;
use crate::protocol::model::action::HasAction;
use crate::protocol::model::{ActionRef, EscalationCondition, Protocol};
use crate::protocol::template;
use std::collections::BTreeSet;

/// What an expression or template at some place may read.
struct Scope<'s> {
    /// Allowed roots (`inputs`, `outputs`, `metrics`, `gates`, `run`, `step`, `attempt`).
    roots: &'static [&'static str],
    /// Steps whose outputs may be read; `None` means any step.
    readable: Option<&'s BTreeSet<usize>>,
    /// Who is reading, for messages.
    reader: String,
}

const STEP_TEMPLATE: &[&str] = &["inputs", "outputs", "run", "step"];
const STEP_CEL: &[&str] = &["inputs", "outputs", "metrics", "gates"];
const RETRY_CEL: &[&str] = &["attempt", "inputs", "outputs"];
const INPUTS_ONLY: &[&str] = &["inputs"];
const ANYWHERE_CEL: &[&str] = &["inputs", "outputs", "metrics", "gates"];

pub(crate) fn check(protocol: &Protocol, index: &Index<'_>, report: &mut Report) {
    let mut ctx = Ctx { protocol, index, report };
    for (i, s) in index.steps.iter().enumerate() {
        let upstream = index.ancestors(i);
        let mut with_self = upstream.clone();
        with_self.insert(i);
        let reader = format!("step `{}`", s.step.id);
        let templates = Scope { roots: STEP_TEMPLATE, readable: Some(&upstream), reader: reader.clone() };
        let cel = Scope { roots: STEP_CEL, readable: Some(&upstream), reader: reader.clone() };
        let own = Scope { roots: RETRY_CEL, readable: Some(&with_self), reader: reader.clone() };
        let rollback = Scope { roots: STEP_TEMPLATE, readable: Some(&with_self), reader };
        if let Some(when) = &s.step.when {
            ctx.cel(at(&s.path, segs!["when"]), when, &cel);
        }
        ctx.action_strings(&s.path, s.step.action(), &templates);
        if let Some(retry_if) = s.step.retry.as_ref().and_then(|r| r.retry_if.as_ref()) {
            ctx.cel(at(&s.path, segs!["retry", "retry_if"]), retry_if, &own);
        }
        for (a, alt) in s.step.alternatives.iter().enumerate() {
            let alt_path = at(&s.path, segs!["alternatives", a]);
            if let Some(when) = &alt.when {
                ctx.cel(at(&alt_path, segs!["when"]), when, &cel);
            }
            ctx.action_strings(&alt_path, alt.action(), &templates);
        }
        if let Some(rb) = &s.step.rollback {
            ctx.action_strings(&at(&s.path, segs!["rollback"]), rb.action(), &rollback);
        }
        if let Some(cp) = &s.step.checkpoint {
            for (r, record) in cp.record.iter().enumerate() {
                let full = if record.contains('.') { record.clone() } else { format!("{}.{record}", s.step.id) };
                ctx.output_ref(at(&s.path, segs!["checkpoint", "record", r]), &full, &own);
            }
        }
    }
    let any = Scope { roots: ANYWHERE_CEL, readable: None, reader: "this".into() };
    for (p, phase) in protocol.phases.iter().enumerate() {
        if let Some(when) = &phase.when {
            ctx.cel(
                segs!["phases", p, "when"],
                when,
                &Scope { roots: ANYWHERE_CEL, readable: None, reader: format!("phase `{}`", phase.id) },
            );
        }
        if let Some(cp) = &phase.checkpoint {
            for (r, record) in cp.record.iter().enumerate() {
                ctx.output_ref(segs!["phases", p, "checkpoint", "record", r], record, &any);
            }
        }
    }
    for (g, gate) in protocol.gates.iter().enumerate() {
        let placed = gate_upstream(index, &gate.after);
        let scope = Scope { roots: ANYWHERE_CEL, readable: Some(&placed), reader: format!("gate `{}`", gate.id) };
        for (c, criterion) in gate.criteria.iter().enumerate() {
            ctx.cel(segs!["gates", g, "criteria", c, "expr"], &criterion.expr, &scope);
        }
    }
    for (e, esc) in protocol.escalations.iter().enumerate() {
        if let Some(EscalationCondition::Expr(source)) = &esc.when {
            ctx.cel(
                segs!["escalations", e, "when", "expr"],
                source,
                &Scope { reader: format!("escalation `{}`", esc.id), ..any_scope() },
            );
        }
    }
    for (name, metric) in &protocol.metrics {
        ctx.output_ref(
            segs!["metrics", name.as_str(), "from"],
            &metric.from,
            &Scope { reader: format!("metric `{name}`"), ..any_scope() },
        );
    }
    for (i, slo) in protocol.slos.iter().enumerate() {
        if let Some(when) = &slo.when {
            ctx.cel(
                segs!["slos", i, "when"],
                when,
                &Scope { roots: INPUTS_ONLY, readable: None, reader: format!("SLO `{}`", slo.id) },
            );
        }
    }
}

fn any_scope() -> Scope<'static> {
    Scope { roots: ANYWHERE_CEL, readable: None, reader: String::new() }
}

/// Steps a gate may read: those it is placed after (steps, or all steps of phases) and their
/// ancestors.
fn gate_upstream(index: &Index<'_>, after: &[String]) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for target in after {
        let direct: Vec<usize> = match index.by_id.get(target.as_str()) {
            Some(&i) => vec![i],
            None => index.steps.iter().enumerate().filter(|(_, s)| s.phase == target).map(|(i, _)| i).collect(),
        };
        for i in direct {
            out.insert(i);
            out.extend(index.ancestors(i));
        }
    }
    out
}

struct Ctx<'c, 'a> {
    protocol: &'a Protocol,
    index: &'c Index<'a>,
    report: &'c mut Report,
}

impl Ctx<'_, '_> {
    fn cel(&mut self, path: Vec<Seg>, source: &str, scope: &Scope<'_>) {
        match expr::compile(source) {
            Err(err) => self.report.error_hint(
                path,
                format!("invalid CEL expression: {err}"),
                "CEL syntax: https://cel.dev (e.g. `outputs.scan.cvss >= 7.0`)",
            ),
            Ok(compiled) => {
                for reference in compiled.references() {
                    self.reference(&path, &reference, scope);
                }
            }
        }
    }

    fn template(&mut self, path: Vec<Seg>, text: &str, scope: &Scope<'_>) {
        match template::variables(text) {
            Err(err) => self.report.error(path, err),
            Ok(vars) => {
                for var in vars {
                    self.reference(&path, &var, scope);
                }
            }
        }
    }

    fn action_strings(&mut self, base: &[Seg], action: Option<ActionRef<'_>>, scope: &Scope<'_>) {
        let Some(action) = action else { return };
        let mut strings: Vec<(Vec<Seg>, &str)> = Vec::new();
        match action {
            ActionRef::Exec(exec) => {
                strings.extend(exec.program.iter().map(|p| (segs!["exec", "program"], p.as_str())));
                strings.extend(exec.args.iter().enumerate().map(|(i, a)| (segs!["exec", "args", i], a.as_str())));
                strings.extend(exec.env.iter().map(|(k, v)| (segs!["exec", "env", k.as_str()], v.as_str())));
                strings.extend(exec.cwd.iter().map(|c| (segs!["exec", "cwd"], c.as_str())));
            }
            ActionRef::Http(http) => {
                strings.push((segs!["http", "url"], &http.url));
                strings.extend(http.headers.iter().map(|(k, v)| (segs!["http", "headers", k.as_str()], v.as_str())));
                strings.extend(http.body.iter().map(|b| (segs!["http", "body"], b.as_str())));
            }
            ActionRef::Tcp(tcp) => strings.push((segs!["tcp", "host"], &tcp.host)),
            ActionRef::Tls(tls) => {
                strings.push((segs!["tls", "host"], &tls.host));
                strings.extend(tls.server_name.iter().map(|n| (segs!["tls", "server_name"], n.as_str())));
            }
            ActionRef::Approval(approval) => {
                strings.extend(approval.binds.iter().map(|b| (segs!["approval", "binds"], b.as_str())))
            }
            ActionRef::Wait(wait) => {
                if let Some(until) = &wait.until {
                    let cel = Scope { roots: STEP_CEL, readable: scope.readable, reader: scope.reader.clone() };
                    self.cel(at(base, segs!["wait", "until"]), until, &cel);
                }
            }
            ActionRef::Form(_) | ActionRef::Decision(_) | ActionRef::Manual(_) => {}
        }
        for (rel, text) in strings {
            self.template(at(base, rel), text, scope);
        }
    }

    fn reference(&mut self, path: &[Seg], reference: &str, scope: &Scope<'_>) {
        let parts: Vec<&str> = reference.split('.').collect();
        let root = parts[0];
        if !scope.roots.contains(&root) {
            let suffix = format!("-{root}");
            let hyphenated = self.index.by_id.keys().chain(self.index.gates.iter()).find(|id| id.ends_with(&suffix));
            let hint = match (hyphenated, did_you_mean(root, scope.roots.iter().copied())) {
                (Some(id), _) => format!("`{id}` contains `-`, which CEL reads as a minus: write `outputs['{id}']`"),
                (None, Some(best)) => format!("did you mean `{best}`?"),
                (None, None) => format!("here you can use: {}", scope.roots.join(", ")),
            };
            self.report.error_hint(path.to_vec(), format!("unknown variable `{reference}`"), hint);
            return;
        }
        match (root, parts.get(1)) {
            ("inputs", Some(name)) if !self.protocol.inputs.contains_key(*name) => {
                let hint = did_you_mean(name, self.protocol.inputs.keys().map(String::as_str))
                    .map_or_else(|| "declare it under `inputs:`".to_owned(), |b| format!("did you mean `inputs.{b}`?"));
                self.report.error_hint(path.to_vec(), format!("`{reference}` refers to an undeclared input"), hint);
            }
            ("metrics", Some(name)) if !self.protocol.metrics.contains_key(*name) => {
                self.report.error_hint(
                    path.to_vec(),
                    format!("`{reference}` refers to an undeclared metric"),
                    "declare it under `metrics:`",
                );
            }
            ("gates", Some(name)) if !self.index.gates.contains(name) => {
                let hint = did_you_mean(name, self.index.gates.iter().copied())
                    .map_or("gates are declared under `gates:`".to_owned(), |b| format!("did you mean `gates.{b}`?"));
                self.report.error_hint(path.to_vec(), format!("`{reference}` refers to an unknown gate"), hint);
            }
            ("outputs", Some(_)) => self.output_ref(path.to_vec(), &parts[1..].join("."), scope),
            _ => {}
        }
    }

    /// `step.output` (or just `step`): the step exists, declares the output, and the reader
    /// depends on it.
    fn output_ref(&mut self, path: Vec<Seg>, target: &str, scope: &Scope<'_>) {
        let mut parts = target.split('.');
        let step = parts.next().unwrap_or_default();
        let output = parts.next();
        let Some(&index) = self.index.by_id.get(step) else {
            let hint = did_you_mean(step, self.index.by_id.keys().copied())
                .map_or("write `<step>.<output>`".to_owned(), |b| format!("did you mean `{b}`?"));
            self.report.error_hint(path, format!("{} refers to outputs of unknown step `{step}`", scope.reader), hint);
            return;
        };
        if let Some(output) = output {
            let available = self.index.outputs.get(step).cloned().unwrap_or_default();
            if !available.contains(output) {
                let hint = match did_you_mean(output, available.iter().map(String::as_str)) {
                    Some(best) => format!("did you mean `{step}.{best}`?"),
                    None if available.is_empty() => format!("declare it under `outputs:` of step `{step}`"),
                    None => format!("`{step}` provides: {}", available.iter().cloned().collect::<Vec<_>>().join(", ")),
                };
                self.report.error_hint(path, format!("step `{step}` has no output `{output}`"), hint);
                return;
            }
        }
        if let Some(readable) = scope.readable
            && !readable.contains(&index)
        {
            self.report.error_hint(
                path,
                format!("{} reads outputs of `{step}` but does not run after it", scope.reader),
                format!("add `{step}` to `needs` (or place the gate after it) so its outputs exist"),
            );
        }
    }
}
