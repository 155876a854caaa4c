//! Drawing a protocol as a graph (`muster graph`), so people can review a protocol's shape —
//! phases, ordering, where people act, where gates hold the run and what escalates — without
//! reading YAML.
//!
//! A protocol is first turned into a small format-neutral graph (nodes, clusters, edges);
//! each output format is then a plain printer of that graph, so Mermaid and Graphviz always show
//! the same thing. Nodes get synthetic ids (`s1`, `g1`, `e1`, ...) because protocol ids may
//! contain `-`, which neither format accepts in a bare identifier (and `end` would end a Mermaid
//! subgraph); the real id is always the first line of the label.
//!
//! What is drawn:
//! - phases as clusters (Mermaid `subgraph`, Graphviz `subgraph cluster_*`), a phase's `needs` as
//!   a thick edge between clusters;
//! - steps labelled `id`, title and `[owner] action`; human steps (form, approval, decision,
//!   manual) as parallelograms;
//! - gates as diamonds, fed by their `after` targets and feeding what depends on those targets; a
//!   gate with an empty `after` feeds the root phases (or root steps) as a prerequisite;
//! - escalations as flag/note nodes attached (dashed) to the step, phase or gate they watch, with
//!   their severity and condition, and dashed arrows from steps or gates that raise them;
//! - alternatives and rollbacks as dotted side branches of their step.

use muster_schemas::protocol::model::action::HasAction;
use muster_schemas::protocol::model::oversight::{GateAction, GateOutcomeKind, Threshold};
use muster_schemas::protocol::model::{
    Escalation, EscalationCondition, Gate, MAIN_PHASE, OnFailure, Protocol, Severity, Step,
};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// The output format of [`render`]: Mermaid for Markdown previews (GitHub, docs), Graphviz
/// `dot` for SVG/PNG through `dot -Tsvg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A Mermaid `flowchart`.
    Mermaid,
    /// A Graphviz `digraph`.
    Dot,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Mermaid => "mermaid",
            Format::Dot => "dot",
        })
    }
}

/// Renders a protocol in the given format. The output is deterministic (file order throughout),
/// so it can be committed and diffed. Invalid references (which `check` reports) are skipped
/// rather than drawn, so even a broken protocol can be looked at.
pub fn render(protocol: &Protocol, format: Format) -> String {
    let graph = Graph::build(protocol);
    match format {
        Format::Mermaid => mermaid(&graph),
        Format::Dot => dot(&graph),
    }
}

/// How wide a label line may get before it is wrapped.
const WRAP: usize = 40;
/// How many wrapped lines one label field may take before it is cut with `…`.
const MAX_LINES: usize = 3;

/// What a node stands for, which decides its shape and colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Step,
    Human,
    Gate,
    Escalation,
    Alternative,
    Rollback,
}

/// One node: a synthetic id, the label lines and the cluster it is drawn in.
#[derive(Debug)]
struct Node {
    id: String,
    lines: Vec<String>,
    shape: Shape,
    cluster: Option<usize>,
}

/// One phase: the nodes of its first and last steps stand in for it in Graphviz, where an edge
/// must join nodes (clipped at the cluster border with `ltail`/`lhead`).
#[derive(Debug)]
struct Cluster {
    id: String,
    label: String,
    first: Option<usize>,
    last: Option<usize>,
}

/// An edge end: a node or a whole cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Node(usize),
    Cluster(usize),
}

/// What an edge means, which decides how it is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Style {
    /// A step's `needs`.
    Needs,
    /// A phase's `needs`.
    Phase,
    /// Into or out of a gate.
    Gate,
    /// An escalation note attached to what it watches.
    Attach,
    /// A step or gate that raises an escalation.
    Raises,
    /// An alternative or rollback of a step.
    Branch,
}

#[derive(Debug)]
struct Edge {
    from: End,
    to: End,
    style: Style,
    label: Option<String>,
}

/// The format-neutral drawing of a protocol.
#[derive(Debug, Default)]
struct Graph {
    title: String,
    nodes: Vec<Node>,
    clusters: Vec<Cluster>,
    edges: Vec<Edge>,
    seen: BTreeSet<(End, End, Style)>,
}

/// Where steps, phases, gates and escalations ended up in the graph, by protocol id.
#[derive(Debug, Default)]
struct Ids<'a> {
    steps: HashMap<&'a str, usize>,
    step_phase: HashMap<&'a str, &'a str>,
    phases: HashMap<&'a str, usize>,
    gates: HashMap<&'a str, usize>,
    escalations: HashMap<&'a str, usize>,
}

impl Graph {
    fn build(protocol: &Protocol) -> Graph {
        let title = match &protocol.title {
            Some(title) => format!("{}: {title}", protocol.id),
            None => protocol.id.clone(),
        };
        let mut graph = Graph { title, ..Graph::default() };
        let mut ids = Ids::default();
        graph.add_phases(protocol, &mut ids);
        graph.add_steps(protocol, &mut ids);
        graph.add_escalation_nodes(protocol, &mut ids);
        graph.add_needs(protocol, &ids);
        for (g, gate) in protocol.gates.iter().enumerate() {
            graph.add_gate(protocol, &mut ids, g, gate);
        }
        for escalation in &protocol.escalations {
            graph.attach_escalation(&ids, escalation);
        }
        graph.add_raisers(protocol, &ids);
        graph
    }

    fn add_node(&mut self, id: String, lines: Vec<String>, shape: Shape, cluster: Option<usize>) -> usize {
        self.nodes.push(Node { id, lines, shape, cluster });
        self.nodes.len() - 1
    }

    /// Adds an edge once: the same pair may be reached several ways (a gate after two steps
    /// needed by the same step).
    fn add_edge(&mut self, from: End, to: End, style: Style, label: Option<String>) {
        if from != to && self.seen.insert((from, to, style)) {
            self.edges.push(Edge { from, to, style, label });
        }
    }

    fn add_phases<'a>(&mut self, protocol: &'a Protocol, ids: &mut Ids<'a>) {
        for (p, phase) in protocol.phases.iter().enumerate() {
            let label = match &phase.title {
                Some(title) => format!("{}: {}", phase.id, one_line(title)),
                None => phase.id.clone(),
            };
            let label = match &phase.when {
                Some(when) => format!("{label} (if {})", one_line(when)),
                None => label,
            };
            self.clusters.push(Cluster { id: format!("p{}", p + 1), label, first: None, last: None });
            ids.phases.insert(&phase.id, p);
        }
    }

    fn add_steps<'a>(&mut self, protocol: &'a Protocol, ids: &mut Ids<'a>) {
        for (n, (phase, step)) in protocol.all_steps().enumerate() {
            let cluster = ids.phases.get(phase).copied();
            let human = step.action().is_some_and(|a| a.is_human());
            let shape = if human { Shape::Human } else { Shape::Step };
            let node = self.add_node(format!("s{}", n + 1), step_lines(step), shape, cluster);
            if let Some(c) = cluster.and_then(|c| self.clusters.get_mut(c)) {
                c.first.get_or_insert(node);
                c.last = Some(node);
            }
            ids.steps.insert(&step.id, node);
            ids.step_phase.insert(&step.id, phase);
            self.add_branches(step, node, cluster);
        }
    }

    /// Alternatives and the rollback of a step, as dotted side branches in its cluster.
    fn add_branches(&mut self, step: &Step, node: usize, cluster: Option<usize>) {
        let base = self.nodes.get(node).map(|n| n.id.clone()).unwrap_or_default();
        for (a, alt) in step.alternatives.iter().enumerate() {
            let mut lines = vec![format!("alternative {}", alt.id)];
            lines.extend(alt.title.as_deref().map(wrap).unwrap_or_default());
            lines.push(owner_line(alt.owner.unwrap_or(step.owner), alt.action().map(|a| a.key())));
            let alt_node = self.add_node(format!("{base}a{}", a + 1), lines, Shape::Alternative, cluster);
            self.add_edge(End::Node(node), End::Node(alt_node), Style::Branch, Some("alternative".to_owned()));
        }
        if let Some(rollback) = &step.rollback {
            let mut lines = vec![format!("rollback of {}", step.id)];
            lines.extend(rollback.description.as_deref().map(wrap).unwrap_or_default());
            lines.push(owner_line(rollback.owner.unwrap_or(step.owner), rollback.action().map(|a| a.key())));
            let rb_node = self.add_node(format!("{base}r"), lines, Shape::Rollback, cluster);
            self.add_edge(End::Node(node), End::Node(rb_node), Style::Branch, Some("rollback".to_owned()));
        }
    }

    /// Escalation nodes first (their attachments come after the gates exist); an escalation
    /// watching a step is drawn inside that step's phase.
    fn add_escalation_nodes<'a>(&mut self, protocol: &'a Protocol, ids: &mut Ids<'a>) {
        for (e, escalation) in protocol.escalations.iter().enumerate() {
            let cluster = match &escalation.when {
                Some(EscalationCondition::RunningLonger { target, .. }) => ids.steps.get(target.as_str()),
                Some(EscalationCondition::ConsecutiveFailures { step, .. }) => ids.steps.get(step.as_str()),
                _ => None,
            }
            .and_then(|&n| self.nodes.get(n))
            .and_then(|n| n.cluster);
            let node = self.add_node(format!("e{}", e + 1), escalation_lines(escalation), Shape::Escalation, cluster);
            ids.escalations.insert(&escalation.id, node);
        }
    }

    fn add_needs(&mut self, protocol: &Protocol, ids: &Ids<'_>) {
        for (_, step) in protocol.all_steps() {
            let Some(&to) = ids.steps.get(step.id.as_str()) else { continue };
            for need in &step.needs {
                if let Some(&from) = ids.steps.get(need.as_str()) {
                    self.add_edge(End::Node(from), End::Node(to), Style::Needs, None);
                }
            }
        }
        for (p, phase) in protocol.phases.iter().enumerate() {
            for need in &phase.needs {
                if let Some(&from) = ids.phases.get(need.as_str()) {
                    self.add_edge(End::Cluster(from), End::Cluster(p), Style::Phase, None);
                }
            }
        }
    }

    fn add_gate<'a>(&mut self, protocol: &'a Protocol, ids: &mut Ids<'a>, g: usize, gate: &'a Gate) {
        let node = self.add_node(format!("g{}", g + 1), gate_lines(gate), Shape::Gate, None);
        ids.gates.insert(&gate.id, node);
        if gate.after.is_empty() {
            for root in roots(protocol, ids) {
                self.add_edge(End::Node(node), root, Style::Gate, None);
            }
            return;
        }
        for target in &gate.after {
            for from in sources(protocol, ids, target) {
                self.add_edge(from, End::Node(node), Style::Gate, None);
            }
            for to in dependents(protocol, ids, target) {
                self.add_edge(End::Node(node), to, Style::Gate, None);
            }
        }
    }

    /// Attaches an escalation's note to what it watches: a step, a phase, a gate, or the steps
    /// whose outputs its expression reads. `run` targets stay free-standing.
    fn attach_escalation(&mut self, ids: &Ids<'_>, escalation: &Escalation) {
        let Some(&note) = ids.escalations.get(escalation.id.as_str()) else { return };
        let targets: Vec<End> = match &escalation.when {
            Some(EscalationCondition::RunningLonger { target, .. }) => step_or_phase(ids, target).into_iter().collect(),
            Some(EscalationCondition::ConsecutiveFailures { step, .. }) => {
                ids.steps.get(step.as_str()).map(|&n| End::Node(n)).into_iter().collect()
            }
            Some(EscalationCondition::Gate { gate, .. }) => {
                ids.gates.get(gate.as_str()).map(|&n| End::Node(n)).into_iter().collect()
            }
            Some(EscalationCondition::Expr(expr)) => {
                referenced_steps(expr).iter().filter_map(|s| ids.steps.get(s.as_str())).map(|&n| End::Node(n)).collect()
            }
            None => Vec::new(),
        };
        for target in targets {
            self.add_edge(target, End::Node(note), Style::Attach, None);
        }
    }

    /// Dashed arrows from steps whose `on_failure` and gates whose outcomes raise an escalation.
    fn add_raisers(&mut self, protocol: &Protocol, ids: &Ids<'_>) {
        for (_, step) in protocol.all_steps() {
            if let (Some(OnFailure::Escalate(id)), Some(&from)) = (&step.on_failure, ids.steps.get(step.id.as_str()))
                && let Some(&to) = ids.escalations.get(id.as_str())
            {
                self.add_edge(End::Node(from), End::Node(to), Style::Raises, Some("on failure".to_owned()));
            }
        }
        for gate in &protocol.gates {
            let Some(&from) = ids.gates.get(gate.id.as_str()) else { continue };
            let outcomes = [
                ("pass", &gate.on.pass),
                ("warn", &gate.on.warn),
                ("fail", &gate.on.fail),
                ("inconclusive", &gate.on.inconclusive),
            ];
            for (outcome, action) in outcomes {
                if let GateAction::Escalate(id) = action
                    && let Some(&to) = ids.escalations.get(id.as_str())
                {
                    self.add_edge(End::Node(from), End::Node(to), Style::Raises, Some(outcome.to_owned()));
                }
            }
        }
    }
}

/// Where a prerequisite gate leads: the phases that need no other phase, or (without phases)
/// the steps that need nothing.
fn roots(protocol: &Protocol, ids: &Ids<'_>) -> Vec<End> {
    if protocol.phases.is_empty() {
        return protocol
            .steps
            .iter()
            .filter(|s| s.needs.is_empty())
            .filter_map(|s| ids.steps.get(s.id.as_str()))
            .map(|&n| End::Node(n))
            .collect();
    }
    protocol.phases.iter().enumerate().filter(|(_, p)| p.needs.is_empty()).map(|(p, _)| End::Cluster(p)).collect()
}

/// What feeds a gate placed after `target`: the step, the phase's cluster, or (for the implicit
/// `main` phase) the top-level steps nothing else needs.
fn sources(protocol: &Protocol, ids: &Ids<'_>, target: &str) -> Vec<End> {
    if let Some(end) = step_or_phase(ids, target) {
        return vec![end];
    }
    if target != MAIN_PHASE {
        return Vec::new();
    }
    let needed: BTreeSet<&str> = protocol.steps.iter().flat_map(|s| s.needs.iter().map(String::as_str)).collect();
    protocol
        .steps
        .iter()
        .filter(|s| !needed.contains(s.id.as_str()))
        .filter_map(|s| ids.steps.get(s.id.as_str()))
        .map(|&n| End::Node(n))
        .collect()
}

/// What waits for a gate placed after `target`: steps that need the target step (or a step of
/// the target phase, from outside it), and phases that need the target's phase.
fn dependents(protocol: &Protocol, ids: &Ids<'_>, target: &str) -> Vec<End> {
    let (target_phase, target_steps): (Option<&str>, BTreeSet<&str>) = if ids.steps.contains_key(target) {
        (ids.step_phase.get(target).copied().filter(|p| ids.phases.contains_key(p)), [target].into())
    } else if ids.phases.contains_key(target) {
        let steps =
            protocol.phases.iter().filter(|p| p.id == target).flat_map(|p| p.steps.iter().map(|s| s.id.as_str()));
        (Some(target), steps.collect())
    } else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (phase, step) in protocol.all_steps() {
        let outside = ids.steps.contains_key(target) || Some(phase) != target_phase;
        if outside
            && step.needs.iter().any(|n| target_steps.contains(n.as_str()))
            && let Some(&n) = ids.steps.get(step.id.as_str())
        {
            found.push(End::Node(n));
        }
    }
    if let Some(target_phase) = target_phase {
        for (p, phase) in protocol.phases.iter().enumerate() {
            if phase.needs.iter().any(|n| n == target_phase) {
                found.push(End::Cluster(p));
            }
        }
    }
    found
}

fn step_or_phase(ids: &Ids<'_>, id: &str) -> Option<End> {
    ids.steps.get(id).map(|&n| End::Node(n)).or_else(|| ids.phases.get(id).map(|&c| End::Cluster(c)))
}

/// Step ids an expression reads outputs of (`outputs.scan.cvss` → `scan`).
fn referenced_steps(expr: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (at, _) in expr.match_indices("outputs.") {
        let before = expr[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let id: String = expr[at + "outputs.".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if !id.is_empty() && !found.contains(&id) {
            found.push(id);
        }
    }
    found
}

fn step_lines(step: &Step) -> Vec<String> {
    let mut lines = vec![step.id.clone()];
    lines.extend(step.title.as_deref().map(wrap).unwrap_or_default());
    lines.push(owner_line(step.owner, step.action().map(|a| a.key())));
    if let Some(when) = &step.when {
        lines.extend(wrap(&format!("if {when}")));
    }
    lines
}

fn owner_line(owner: muster_schemas::Role, action: Option<&str>) -> String {
    match action {
        Some(key) => format!("[{owner}] {key}"),
        None => format!("[{owner}]"),
    }
}

fn gate_lines(gate: &Gate) -> Vec<String> {
    let mut lines = vec![format!("gate {}", gate.id)];
    lines.extend(gate.title.as_deref().map(wrap).unwrap_or_default());
    lines.push(format!("[{}]", gate.owner));
    lines
}

fn escalation_lines(escalation: &Escalation) -> Vec<String> {
    let mut lines = vec![format!("escalation {}", escalation.id)];
    lines.extend(escalation.title.as_deref().map(wrap).unwrap_or_default());
    let blocking = if escalation.blocking { ", blocking" } else { "" };
    lines.push(format!("severity {}{blocking}", severity(escalation.severity)));
    let summary =
        escalation.when.as_ref().map_or_else(|| "raised by on_failure or a gate".to_owned(), condition_summary);
    lines.extend(wrap(&summary));
    lines
}

fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

/// The condition of an escalation in a few words, with its threshold.
fn condition_summary(when: &EscalationCondition) -> String {
    match when {
        EscalationCondition::RunningLonger { target, threshold } => {
            format!("when {target} runs longer than {}", threshold_summary(threshold))
        }
        EscalationCondition::Expr(expr) => format!("when {expr}"),
        EscalationCondition::ConsecutiveFailures { step, count } => {
            format!("when {step} fails {count} times in a row")
        }
        EscalationCondition::Gate { gate, outcome } => {
            let outcome = match outcome {
                GateOutcomeKind::Fail => "fails",
                GateOutcomeKind::Warn => "warns",
                GateOutcomeKind::Inconclusive => "is inconclusive",
            };
            format!("when gate {gate} {outcome}")
        }
    }
}

fn threshold_summary(threshold: &Threshold) -> String {
    match threshold {
        Threshold::Fixed(duration) => duration.to_string(),
        Threshold::ByInput(by) => {
            let mut parts: Vec<String> = by.values.iter().map(|(value, d)| format!("{value} {d}")).collect();
            if let Some(default) = by.default {
                parts.push(format!("otherwise {default}"));
            }
            format!("({} by input {})", parts.join(", "), by.input)
        }
    }
}

/// Collapses whitespace (newlines included) to single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Wraps text into lines of at most [`WRAP`] characters (breaking over-long words), keeping
/// at most [`MAX_LINES`] lines and marking a cut with `…`: labels stay readable, and the id on
/// the first line leads to the full text.
fn wrap(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        for piece in chunks(word, WRAP) {
            let width = current.chars().count();
            if width > 0 && width + 1 + piece.chars().count() > WRAP {
                lines.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(&piece);
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.len() > MAX_LINES {
        lines.truncate(MAX_LINES);
        if let Some(last) = lines.last_mut() {
            last.push('…');
        }
    }
    lines
}

/// Splits a word into pieces of at most `width` characters.
fn chunks(word: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    chars.chunks(width.max(1)).map(|c| c.iter().collect()).collect()
}

// ---------------------------------------------------------------------------------------------
// Mermaid

/// Escapes text for a quoted Mermaid label: Mermaid decodes `#name;` entities, so quotes,
/// angle brackets (HTML labels), `&`, `#` itself and backticks (markdown strings) are written
/// as entities, and newlines as `<br/>`.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '`' => out.push_str("#96;"),
            '\n' => out.push_str("<br/>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn mermaid_label(lines: &[String]) -> String {
    lines.iter().map(|l| mermaid_text(l)).collect::<Vec<_>>().join("<br/>")
}

fn mermaid_node(node: &Node) -> String {
    let label = mermaid_label(&node.lines);
    let (open, close) = match node.shape {
        Shape::Step => ("[\"", "\"]"),
        Shape::Human => ("[/\"", "\"/]"),
        Shape::Gate => ("{\"", "\"}"),
        Shape::Escalation => (">\"", "\"]"),
        Shape::Alternative => ("(\"", "\")"),
        Shape::Rollback => ("[[\"", "\"]]"),
    };
    format!("{}{open}{label}{close}", node.id)
}

fn mermaid_end(graph: &Graph, end: End) -> Option<&str> {
    match end {
        End::Node(n) => graph.nodes.get(n).map(|n| n.id.as_str()),
        End::Cluster(c) => graph.clusters.get(c).map(|c| c.id.as_str()),
    }
}

fn mermaid_edge(graph: &Graph, edge: &Edge) -> Option<String> {
    let from = mermaid_end(graph, edge.from)?;
    let to = mermaid_end(graph, edge.to)?;
    let arrow = match edge.style {
        Style::Needs | Style::Gate => "-->",
        Style::Phase => "==>",
        Style::Attach => "-.-",
        Style::Raises | Style::Branch => "-.->",
    };
    Some(match &edge.label {
        Some(label) => format!("{from} {arrow}|\"{}\"| {to}", mermaid_text(label)),
        None => format!("{from} {arrow} {to}"),
    })
}

/// The Mermaid class of each shape that is drawn differently from a plain step.
fn mermaid_class(shape: Shape) -> Option<&'static str> {
    match shape {
        Shape::Step => None,
        Shape::Human => Some("human"),
        Shape::Gate => Some("gate"),
        Shape::Escalation => Some("escalation"),
        Shape::Alternative => Some("alternative"),
        Shape::Rollback => Some("rollback"),
    }
}

const MERMAID_CLASSES: [(&str, &str); 5] = [
    ("human", "fill:#fff4d6,stroke:#b8860b,color:#000"),
    ("gate", "fill:#e6eeff,stroke:#3050a0,color:#000"),
    ("escalation", "fill:#ffe8e8,stroke:#b03030,color:#000,stroke-dasharray:4 3"),
    ("alternative", "stroke-dasharray:3 3"),
    ("rollback", "fill:#f2f2f2,stroke:#777,color:#000,stroke-dasharray:3 3"),
];

fn mermaid(graph: &Graph) -> String {
    let mut out = String::from("flowchart TB\n");
    out.push_str(&format!("  %% {}\n", one_line(&graph.title)));
    for node in graph.nodes.iter().filter(|n| n.cluster.is_none() && n.shape == Shape::Gate) {
        out.push_str(&format!("  {}\n", mermaid_node(node)));
    }
    for (c, cluster) in graph.clusters.iter().enumerate() {
        out.push_str(&format!("  subgraph {}[\"{}\"]\n", cluster.id, mermaid_text(&cluster.label)));
        for node in graph.nodes.iter().filter(|n| n.cluster == Some(c)) {
            out.push_str(&format!("    {}\n", mermaid_node(node)));
        }
        out.push_str("  end\n");
    }
    for node in graph.nodes.iter().filter(|n| n.cluster.is_none() && n.shape != Shape::Gate) {
        out.push_str(&format!("  {}\n", mermaid_node(node)));
    }
    for edge in &graph.edges {
        if let Some(line) = mermaid_edge(graph, edge) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    for (class, style) in MERMAID_CLASSES {
        let members: Vec<&str> =
            graph.nodes.iter().filter(|n| mermaid_class(n.shape) == Some(class)).map(|n| n.id.as_str()).collect();
        if !members.is_empty() {
            out.push_str(&format!("  classDef {class} {style}\n  class {} {class}\n", members.join(",")));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Graphviz

/// Escapes text for a double-quoted Graphviz string: backslashes (which would otherwise start
/// escapes such as `\N`) and quotes are escaped, newlines become `\n`.
fn dot_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn dot_label(lines: &[String]) -> String {
    lines.iter().map(|l| dot_text(l)).collect::<Vec<_>>().join("\\n")
}

fn dot_node(node: &Node) -> String {
    let attrs = match node.shape {
        Shape::Step => "",
        Shape::Human => ", shape=parallelogram, style=filled, fillcolor=\"#fff4d6\", color=\"#b8860b\"",
        Shape::Gate => ", shape=diamond, style=filled, fillcolor=\"#e6eeff\", color=\"#3050a0\"",
        Shape::Escalation => ", shape=note, style=filled, fillcolor=\"#ffe8e8\", color=\"#b03030\"",
        Shape::Alternative => ", style=\"rounded,dashed\"",
        Shape::Rollback => ", style=dashed, color=\"#777777\"",
    };
    format!("{} [label=\"{}\"{attrs}];", node.id, dot_label(&node.lines))
}

/// A Graphviz edge joins nodes: a cluster end is its last (tail) or first (head) step, and
/// `ltail`/`lhead` clip the edge at the cluster's border.
fn dot_edge(graph: &Graph, edge: &Edge) -> Option<String> {
    let mut attrs: Vec<String> = Vec::new();
    let from = match edge.from {
        End::Node(n) => graph.nodes.get(n)?,
        End::Cluster(c) => {
            let cluster = graph.clusters.get(c)?;
            attrs.push(format!("ltail=cluster_{}", cluster.id));
            graph.nodes.get(cluster.last?)?
        }
    };
    let to = match edge.to {
        End::Node(n) => graph.nodes.get(n)?,
        End::Cluster(c) => {
            let cluster = graph.clusters.get(c)?;
            attrs.push(format!("lhead=cluster_{}", cluster.id));
            graph.nodes.get(cluster.first?)?
        }
    };
    attrs.extend(
        match edge.style {
            Style::Needs => &[][..],
            Style::Phase => &["style=bold", "color=\"#555555\""][..],
            Style::Gate => &["color=\"#3050a0\""][..],
            Style::Attach => &["style=dashed", "arrowhead=none", "color=\"#b03030\""][..],
            Style::Raises => &["style=dashed", "color=\"#b03030\""][..],
            Style::Branch => &["style=dotted"][..],
        }
        .iter()
        .map(|s| (*s).to_owned()),
    );
    if let Some(label) = &edge.label {
        attrs.push(format!("label=\"{}\"", dot_text(label)));
    }
    let attrs = if attrs.is_empty() { String::new() } else { format!(" [{}]", attrs.join(", ")) };
    Some(format!("{} -> {}{attrs};", from.id, to.id))
}

fn dot(graph: &Graph) -> String {
    let mut out = format!("digraph \"{}\" {{\n", dot_text(&graph.title));
    out.push_str(&format!(
        "  graph [compound=true, rankdir=TB, fontname=\"Helvetica\", labelloc=t, label=\"{}\"];\n",
        dot_text(&graph.title)
    ));
    out.push_str("  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    for node in graph.nodes.iter().filter(|n| n.cluster.is_none() && n.shape == Shape::Gate) {
        out.push_str(&format!("  {}\n", dot_node(node)));
    }
    for (c, cluster) in graph.clusters.iter().enumerate() {
        out.push_str(&format!("  subgraph cluster_{} {{\n", cluster.id));
        out.push_str(&format!(
            "    label=\"{}\";\n    style=rounded;\n    color=\"#888888\";\n",
            dot_text(&cluster.label)
        ));
        for node in graph.nodes.iter().filter(|n| n.cluster == Some(c)) {
            out.push_str(&format!("    {}\n", dot_node(node)));
        }
        out.push_str("  }\n");
    }
    for node in graph.nodes.iter().filter(|n| n.cluster.is_none() && n.shape != Shape::Gate) {
        out.push_str(&format!("  {}\n", dot_node(node)));
    }
    for edge in &graph.edges {
        if let Some(line) = dot_edge(graph, edge) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use muster_schemas::protocol::{parse_protocol, read_protocol};
    use std::path::PathBuf;

    /// Phases with needs, human steps of every kind, gates (prerequisite, after a step, after a
    /// phase), escalations of every condition, an alternative and a rollback.
    const RICH: &str = r#"
id: rich
title: Everything "drawable"
groups: {oncall: {}}
inputs:
  environment: {type: enum, values: [development, staging], default: development}
phases:
  - id: prepare
    title: Prepare [the] ground
    steps:
      - {id: plan, owner: devops, title: Plan the change, exec: {program: 'true'}, outputs: {cvss: {type: number}}}
      - id: approve
        owner: security
        title: Approve the plan
        needs: [plan]
        approval: {approvers: {groups: [oncall]}}
  - id: apply
    needs: [prepare]
    steps:
      - id: apply-change
        owner: devops
        exec: {program: 'true'}
        on_failure: {escalate: apply-failed}
        alternatives:
          - {id: by-hand, title: Apply by hand, manual: {instructions: do it, responders: {groups: [oncall]}}}
        rollback: {description: Undo the change, exec: {program: 'true'}}
      - id: pick
        owner: sre
        needs: [apply-change]
        decision:
          prompt: Keep it?
          options: [{id: keep, description: Keep}, {id: undo, description: Undo, effect: rollback}]
          responders: {groups: [oncall]}
  - id: verify
    needs: [apply]
    steps:
      - {id: check, owner: sre, title: "Check \"it\" <works> & #1", exec: {program: 'true'}}
      - id: sign-off
        owner: sre
        needs: [check]
        form: {fields: {notes: {type: string}}, responders: {groups: [oncall]}}
      - {id: confirm, owner: sre, needs: [sign-off], manual: {instructions: look, responders: {groups: [oncall]}}}
gates:
  - {id: ready, owner: resource, criteria: [{name: ok, expr: 'true'}]}
  - {id: plan-ok, owner: security, title: Plan is safe, after: [plan], criteria: [{name: ok, expr: 'true'}], on: {fail: {escalate: unsafe}}}
  - {id: applied, owner: sre, after: [apply], criteria: [{name: ok, expr: 'true'}]}
escalations:
  - id: slow-apply
    severity: high
    when: {running_longer: {target: apply, threshold: {input: environment, values: {development: 75m, staging: 90m}}}}
    options: [{id: wait, description: Keep waiting}]
    fallback: wait
    responders: {groups: [oncall]}
  - id: apply-failed
    severity: critical
    blocking: true
    when: {consecutive_failures: {step: apply-change, count: 3}}
    options: [{id: stop, description: Stop, effect: abort}]
    fallback: stop
    responders: {groups: [oncall]}
  - id: unsafe
    severity: medium
    when: {expr: 'outputs.plan.cvss >= 7.0'}
    options: [{id: stop, description: Stop, effect: abort}]
    fallback: stop
    responders: {groups: [oncall]}
  - id: gate-failed
    severity: low
    when: {gate: {gate: applied, outcome: fail}}
    options: [{id: stop, description: Stop, effect: abort}]
    fallback: stop
    responders: {groups: [oncall]}
"#;

    fn rich() -> Protocol {
        match parse_protocol("rich.yaml", RICH) {
            Ok(protocol) => protocol,
            Err(diagnostics) => panic!("test protocol is invalid: {diagnostics:#?}"),
        }
    }

    /// The node id (`s3`) whose label starts with the protocol id given.
    fn node_of(output: &str, label_start: &str, format: Format) -> String {
        let needle = match format {
            Format::Mermaid => format!("\"{label_start}<br/>"),
            Format::Dot => format!("[label=\"{label_start}\\n"),
        };
        let line = output.lines().find(|l| l.contains(&needle)).unwrap_or_else(|| panic!("no node for {label_start}"));
        line.trim().chars().take_while(|c| c.is_ascii_alphanumeric()).collect()
    }

    #[test]
    fn mermaid_draws_phases_steps_gates_and_edges() {
        let out = render(&rich(), Format::Mermaid);
        assert!(out.starts_with("flowchart TB\n"));
        assert_eq!(out.matches("subgraph ").count(), 3, "{out}");
        assert_eq!(out.lines().filter(|l| l.trim() == "end").count(), 3);
        assert!(out.contains("subgraph p1[\"prepare: Prepare [the] ground\"]"));
        for id in ["plan", "approve", "apply-change", "pick", "check", "sign-off", "confirm"] {
            assert!(out.contains(&format!("\"{id}<br/>")), "step {id} missing:\n{out}");
        }
        for (gate, n) in [("ready", 1), ("plan-ok", 2), ("applied", 3)] {
            assert!(out.contains(&format!("g{n}{{\"gate {gate}<br/>")), "gate {gate}:\n{out}");
        }
        let plan = node_of(&out, "plan", Format::Mermaid);
        let approve = node_of(&out, "approve", Format::Mermaid);
        assert!(out.contains(&format!("  {plan} --> {approve}\n")));
        assert!(out.contains("  p1 ==> p2\n") && out.contains("  p2 ==> p3\n"));
        // Human steps are parallelograms with the human class; exec steps are boxes.
        assert!(out.contains(&format!("{approve}[/\"approve<br/>")));
        assert!(out.contains(&format!("{plan}[\"plan<br/>")));
        assert!(out.contains("classDef human"));
        // Prerequisite gate before the root phase; gate after a step feeds its dependants; a
        // gate after a phase feeds the phase that needs it.
        assert!(out.contains("  g1 --> p1\n"));
        assert!(out.contains(&format!("  {plan} --> g2\n  g2 --> {approve}\n")));
        assert!(out.contains("  p2 --> g3\n  g3 --> p3\n"));
    }

    #[test]
    fn escalations_alternatives_and_rollbacks_are_attached() {
        let out = render(&rich(), Format::Mermaid);
        let apply = node_of(&out, "apply-change", Format::Mermaid);
        let plan = node_of(&out, "plan", Format::Mermaid);
        assert!(out.contains("e1>\"escalation slow-apply<br/>severity high<br/>when apply runs longer than"), "{out}");
        assert!(
            out.replace("<br/>", " ").contains("(development 1h 15m, staging 1h 30m by input environment)"),
            "{out}"
        );
        assert!(out.contains("  p2 -.- e1\n"), "running_longer on a phase attaches to its cluster");
        assert!(out.contains(&format!("  {apply} -.- e2\n")));
        assert!(out.contains(&format!("  {apply} -.->|\"on failure\"| e2\n")));
        assert!(out.contains("severity critical, blocking"));
        assert!(out.contains(&format!("  {plan} -.- e3\n")), "expr escalations attach to the steps they read");
        assert!(out.contains("  g3 -.- e4\n") && out.contains("  g2 -.->|\"fail\"| e3\n"));
        assert!(out.contains(&format!("  {apply} -.->|\"alternative\"| {apply}a1\n")));
        assert!(out.contains(&format!("  {apply} -.->|\"rollback\"| {apply}r\n")));
        assert!(
            out.contains(&format!("{apply}r[[\"rollback of apply-change<br/>Undo the change<br/>[devops] exec\"]]"))
        );
    }

    #[test]
    fn dot_draws_clusters_diamonds_parallelograms_and_cluster_edges() {
        let out = render(&rich(), Format::Dot);
        assert!(out.starts_with("digraph \"rich: Everything \\\"drawable\\\"\" {\n"), "{out}");
        assert!(out.contains("compound=true"));
        for p in 1..=3 {
            assert!(out.contains(&format!("subgraph cluster_p{p} {{")));
        }
        assert_eq!(out.matches("shape=diamond").count(), 3);
        assert_eq!(out.matches("shape=parallelogram").count(), 4, "approval, decision, form, manual");
        assert_eq!(out.matches("shape=note").count(), 4);
        let plan = node_of(&out, "plan", Format::Dot);
        let approve = node_of(&out, "approve", Format::Dot);
        assert!(out.contains(&format!("  {plan} -> {approve};\n")));
        assert!(out.contains("[ltail=cluster_p1, lhead=cluster_p2, style=bold"), "{out}");
        assert!(out.contains(&format!("  g1 -> {plan} [lhead=cluster_p1, color=\"#3050a0\"];")));
        check_dot_structure(&out);
    }

    #[test]
    fn labels_are_escaped_in_both_formats() {
        let mut protocol = rich();
        if let Some(step) = protocol.phases[2].steps.first_mut() {
            step.title = Some("Say \"hi\" [now]\n{x} <b> & `#quot;` \\N".to_owned());
        }
        let mermaid_out = render(&protocol, Format::Mermaid);
        let line = mermaid_out.lines().find(|l| l.contains("\"check<br/>")).unwrap_or_default();
        assert!(line.contains("Say #quot;hi#quot; [now] {x} #lt;b#gt; #amp; #96;#35;quot;#96; \\N"), "{line}");
        assert_eq!(line.matches('"').count(), 2, "only the delimiting quotes: {line}");
        check_mermaid_structure(&mermaid_out);
        let dot_out = render(&protocol, Format::Dot);
        let line = dot_out.lines().find(|l| l.contains("label=\"check\\n")).unwrap_or_default();
        assert!(line.contains("Say \\\"hi\\\" [now] {x} <b> & `#quot;` \\\\N"), "{line}");
        check_dot_structure(&dot_out);
    }

    #[test]
    fn escapers_handle_newlines_and_specials() {
        assert_eq!(mermaid_text("a\nb\r\"c\"#"), "a<br/>b#quot;c#quot;#35;");
        assert_eq!(dot_text("a\nb\r\"c\"\\"), "a\\nb\\\"c\\\"\\\\");
    }

    #[test]
    fn long_titles_are_wrapped_and_cut() {
        let lines = wrap(&"word ".repeat(60));
        assert_eq!(lines.len(), MAX_LINES);
        assert!(lines.iter().all(|l| l.chars().count() <= WRAP + 1));
        assert!(lines.last().is_some_and(|l| l.ends_with('…')));
        assert_eq!(wrap(&"x".repeat(50)), vec!["x".repeat(40), "x".repeat(10)]);
        assert_eq!(wrap("é ".repeat(3).as_str()), vec!["é é é"]);
    }

    #[test]
    fn output_is_deterministic() {
        let protocol = rich();
        for format in [Format::Mermaid, Format::Dot] {
            assert_eq!(render(&protocol, format), render(&protocol, format));
        }
    }

    #[test]
    fn top_level_steps_are_drawn_without_clusters() {
        let text = "id: flat\nsteps:\n  - {id: a, owner: sre, exec: {program: 'true'}}\n  - {id: b, owner: sre, needs: [a], exec: {program: 'true'}}\ngates:\n  - {id: first, owner: sre, criteria: [{name: ok, expr: 'true'}]}\n  - {id: last, owner: sre, after: [main], criteria: [{name: ok, expr: 'true'}]}\n";
        let protocol = parse_protocol("flat.yaml", text).unwrap_or_else(|d| panic!("{d:#?}"));
        let out = render(&protocol, Format::Mermaid);
        assert!(!out.contains("subgraph"));
        assert!(out.contains("  s1 --> s2\n  g1 --> s1\n  s2 --> g2\n"), "{out}");
        let out = render(&protocol, Format::Dot);
        assert!(!out.contains("subgraph"));
        check_dot_structure(&out);
    }

    fn scenario_files() -> Vec<PathBuf> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn every_scenario_renders_in_both_formats() {
        let files = scenario_files();
        assert!(!files.is_empty());
        for file in files {
            let protocol = read_protocol(&file).unwrap_or_else(|e| panic!("{e}"));
            for format in [Format::Mermaid, Format::Dot] {
                let out = render(&protocol, format);
                for (_, step) in protocol.all_steps() {
                    let needle = match format {
                        Format::Mermaid => format!("\"{}<br/>", mermaid_text(&step.id)),
                        Format::Dot => format!("label=\"{}\\n", step.id),
                    };
                    assert!(out.contains(&needle), "{}: step {} missing in {format}", file.display(), step.id);
                }
                match format {
                    Format::Mermaid => check_mermaid_structure(&out),
                    Format::Dot => check_dot_structure(&out),
                }
            }
        }
    }

    /// Runs Graphviz on the output when it is installed (it is not a build dependency, so CI
    /// without it skips this and relies on the structural checks).
    #[test]
    fn graphviz_accepts_the_output() {
        let dot_ok = std::process::Command::new("dot").arg("-V").output().is_ok_and(|o| o.status.success());
        if !dot_ok {
            eprintln!("note: `dot` (graphviz) is not on PATH; skipping the graphviz syntax check");
            return;
        }
        let mut protocols = vec![rich()];
        protocols.extend(scenario_files().iter().filter_map(|f| read_protocol(f).ok()));
        for protocol in protocols {
            assert_graphviz_accepts(&render(&protocol, Format::Dot));
        }
    }

    /// Feeds `source` to `dot -Tsvg` and fails on an error or a warning.
    pub(crate) fn assert_graphviz_accepts(source: &str) {
        use std::io::Write;
        let mut child = std::process::Command::new("dot")
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dot: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(source.as_bytes()).unwrap_or_else(|e| panic!("writing to dot: {e}"));
        }
        let output = child.wait_with_output().unwrap_or_else(|e| panic!("dot: {e}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && stderr.trim().is_empty(), "dot rejected:\n{stderr}\n{source}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("<svg"));
    }

    /// Checks Graphviz output without Graphviz: strings close, braces balance, and every edge
    /// joins declared nodes.
    pub(crate) fn check_dot_structure(out: &str) {
        let mut depth = 0i32;
        let mut declared = BTreeSet::new();
        for line in out.lines() {
            let code = strip_dot_strings(line);
            depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
            assert!(depth >= 0, "unbalanced braces at: {line}");
            let code = code.trim();
            if let Some((from, rest)) = code.split_once(" -> ") {
                let to: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                assert!(declared.contains(from) && declared.contains(&to), "edge to undeclared node: {line}");
            } else if code.ends_with("];")
                && !code.starts_with("graph ")
                && !code.starts_with("node ")
                && !code.starts_with("edge ")
            {
                let id: String = code.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                assert!(declared.insert(id), "node declared twice: {line}");
            }
        }
        assert_eq!(depth, 0, "unbalanced braces");
    }

    /// The line with quoted strings blanked out; panics on an unterminated string.
    fn strip_dot_strings(line: &str) -> String {
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                out.push(c);
                continue;
            }
            loop {
                match chars.next() {
                    Some('\\') => {
                        chars.next();
                    }
                    Some('"') => break,
                    Some(_) => {}
                    None => panic!("unterminated string in: {line}"),
                }
            }
            out.push_str("\"\"");
        }
        out
    }

    /// Checks Mermaid output without Mermaid: subgraphs close, labels hold no stray quotes, and
    /// every edge joins declared nodes or subgraphs.
    pub(crate) fn check_mermaid_structure(out: &str) {
        let mut depth = 0i32;
        let mut declared = BTreeSet::new();
        for line in out.lines().skip(1).map(str::trim) {
            if line.starts_with("%%") || line.starts_with("classDef ") || line.starts_with("class ") {
                continue;
            }
            assert_eq!(line.matches('"').count() % 2, 0, "unbalanced quotes: {line}");
            let id: String = line.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            if let Some(rest) = line.strip_prefix("subgraph ") {
                depth += 1;
                declared.insert(rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect::<String>());
            } else if line == "end" {
                depth -= 1;
                assert!(depth >= 0, "`end` without subgraph");
            } else if line[id.len()..].starts_with(" -") || line[id.len()..].starts_with(" =") {
                let to = line.rsplit(' ').next().unwrap_or_default();
                assert!(declared.contains(&id) && declared.contains(to), "edge to undeclared node: {line}");
            } else {
                assert!(!id.is_empty() && declared.insert(id), "bad or duplicate node: {line}");
            }
        }
        assert_eq!(depth, 0, "unclosed subgraph");
    }
}
