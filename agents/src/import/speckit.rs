//! Importing a spec-kit `tasks.md` (`muster import speckit`): a feature's task list becomes a
//! protocol whose phases, ordering and owners follow the document, so the work can be tracked as
//! a durable run and drawn with `muster graph`.
//!
//! How the document is read:
//! - the first `# Tasks: <name>` heading names the protocol; the lines under it (`**Input**`,
//!   `**Prerequisites**`) describe it;
//! - a heading with `Phase N` (any level from `##`) starts a phase; deeper headings inside it
//!   (`### Tests for User Story 1`) are sub-sections of the same phase; another heading that has
//!   tasks under it becomes a phase of its own; headings without tasks are not phases;
//! - `**Purpose**:`, `**Goal**:`, `**Independent Test**:` lines describe the phase;
//!   `**Checkpoint**:` becomes the phase's checkpoint;
//! - `- [ ] T001 [P] [US1] Description` is a task: step `t001`, title the description, labels
//!   `parallel` and `us1` (other short bracket tags become labels too; `- [x]` tasks are kept and
//!   labelled `done`); a phase is labelled with its story (`us1`), priority (`p1`) and `mvp`
//!   when its heading says so; indented lines under a task add to its instructions (bullets become
//!   checklist items);
//! - within a phase, a task without `[P]` needs the task before it, or all the `[P]` tasks run
//!   since the last task without `[P]`; a `[P]` task needs only the last task without `[P]`
//!   before it, so consecutive `[P]` tasks run in parallel and the next plain task joins them;
//! - phases run one after the other, unless a "Dependencies" / "Execution Order" section says
//!   otherwise in sentences this importer understands ("Phase 1 must complete before Phase 2",
//!   "User Story phases (3–5) may begin after Phase 2", "US1 should complete before US2/US3",
//!   "**Foundational (Phase 2)**: Depends on Setup completion - BLOCKS all user stories"); a
//!   phase the section does not mention keeps the default, with a warning;
//! - the owner of each step is inferred from keywords of its text (see [`infer_owner`]);
//! - each task is a `manual` step answered by the `implementers` group, unless
//!   [`ImportOptions::exec`] maps its id to a program.
//!
//! The result passes the same checks as `muster validate`, or the import fails.

use muster_schemas::Role;
use muster_schemas::protocol::check::{check, is_identifier};
use muster_schemas::protocol::model::{
    Checkpoint, DurationSpec, ExecAction, GroupSpec, ManualAction, Phase, Protocol, Responders, Step,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

pub use super::{YamlError, to_yaml};

/// The group every imported manual step is addressed to; deployments map it to people.
pub const IMPLEMENTERS: &str = "implementers";

/// A program a task runs instead of being a manual step, for tasks that are already automated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecMapping {
    /// The program (no shell).
    pub program: String,
    /// Its arguments, one element each.
    pub args: Vec<String>,
}

/// Parses `T003=program arg1 arg2` (arguments split on whitespace, no quoting), the form the
/// command line takes for [`ImportOptions::exec`].
pub fn parse_exec_mapping(text: &str) -> Result<(String, ExecMapping), String> {
    let (id, command) = text.split_once('=').ok_or_else(|| format!("`{text}` is not TASK=PROGRAM [ARGS...]"))?;
    let mut words = command.split_whitespace().map(str::to_owned);
    let program = words.next().ok_or_else(|| format!("`{text}` names no program"))?;
    let id = id.trim();
    if !is_task_id(id) {
        return Err(format!("`{id}` is not a task id like T003"));
    }
    Ok((id.to_ascii_lowercase(), ExecMapping { program, args: words.collect() }))
}

/// How to import: everything the document cannot say.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The protocol id; derived from the `# Tasks: <name>` heading, else the file name, when
    /// omitted.
    pub id: Option<String>,
    /// The document's path as the user gave it: recorded as the protocol's `source` and used
    /// for the id when the document has no `# Tasks:` heading.
    pub file_name: Option<String>,
    /// One role owning every step, instead of inferring owners from the task text.
    pub owner: Option<Role>,
    /// The owner of tasks whose text matches no role's keywords.
    pub default_owner: Role,
    /// Task id (`T003` or `t003`) → the program it runs; mapped tasks become `exec` steps.
    pub exec: BTreeMap<String, ExecMapping>,
    /// How long people have for each manual step (its `deadline` and `timeout`); the model's
    /// defaults when omitted.
    pub deadline: Option<DurationSpec>,
}

impl Default for ImportOptions {
    /// Devops owns unmatched tasks: spec-kit tasks are mostly implementation work.
    fn default() -> Self {
        Self {
            id: None,
            file_name: None,
            owner: None,
            default_owner: Role::Devops,
            exec: BTreeMap::new(),
            deadline: None,
        }
    }
}

/// Something the importer guessed or skipped, for the user to review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line of the document (0 when it concerns the whole document).
    pub line: usize,
    /// What happened.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 { write!(f, "line {}: {}", self.line, self.message) } else { f.write_str(&self.message) }
    }
}

/// Why a document could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The document has no task lines.
    #[error("no tasks found: expected checklist lines like `- [ ] T001 [P] [US1] Description`")]
    NoTasks,
    /// The requested or derived protocol id is not an identifier.
    #[error("`{0}` is not a valid protocol id: use lowercase letters, digits, `-` and `_`, starting with a letter")]
    InvalidId(String),
    /// Two tasks have the same id.
    #[error("line {line}: task {id} appears twice (first on line {first})")]
    DuplicateTask {
        /// The task id.
        id: String,
        /// Where it appears again.
        line: usize,
        /// Where it first appears.
        first: usize,
    },
    /// The protocol built from the document fails the protocol checks (for instance an `exec`
    /// mapping whose arguments hold bad templates).
    #[error("the imported protocol does not pass the checks:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// Imports a spec-kit `tasks.md`: the protocol, and warnings about what was guessed or skipped.
pub fn import(markdown: &str, options: &ImportOptions) -> Result<(Protocol, Vec<Warning>), ImportError> {
    let mut warnings = Vec::new();
    let (text, repaired) = repair_mojibake(markdown);
    if repaired > 0 {
        warnings.push(Warning {
            line: 0,
            message: format!("repaired {repaired} characters that were encoded twice (UTF-8 read as Windows-1252)"),
        });
    }
    let doc = Parser::parse(&text, &mut warnings);
    if doc.sections.iter().all(|s| s.tasks.is_empty()) {
        return Err(ImportError::NoTasks);
    }
    check_duplicates(&doc)?;
    let id = protocol_id(&doc, options)?;
    let phases = phase_infos(&doc);
    let needs = PhaseDeps::resolve(&phases, &doc.dependencies, &mut warnings);
    let protocol = assemble(id, &doc, &phases, &needs, options, &mut warnings);
    let problems = check(&protocol);
    if !problems.is_empty() {
        return Err(ImportError::Invalid(problems.into_iter().map(|p| p.message).collect()));
    }
    Ok((protocol, warnings))
}

// ---------------------------------------------------------------------------------------------
// Reading the document

/// One task line.
#[derive(Debug, Default)]
struct Task {
    line: usize,
    id: String,
    parallel: bool,
    done: bool,
    stories: Vec<u32>,
    tags: Vec<String>,
    text: String,
    items: Vec<String>,
    notes: Vec<String>,
}

/// A heading and what is under it until the next heading at its level or above.
#[derive(Debug, Default)]
struct Section {
    line: usize,
    level: usize,
    heading: String,
    number: Option<u32>,
    notes: Vec<String>,
    checkpoint: Option<String>,
    tasks: Vec<Task>,
}

/// What the document says, in order.
#[derive(Debug, Default)]
struct Document {
    title: Option<String>,
    preamble: Vec<String>,
    /// Sections with tasks, in document order.
    sections: Vec<Section>,
    /// Lines of the dependency sections, with their line numbers.
    dependencies: Vec<(usize, String)>,
}

/// A line-by-line reader of the document.
struct Parser<'w> {
    doc: Document,
    warnings: &'w mut Vec<Warning>,
    open: Option<Section>,
    in_dependencies: bool,
    seen_heading: bool,
    in_fence: bool,
    after_task: bool,
}

impl<'w> Parser<'w> {
    fn parse(text: &str, warnings: &'w mut Vec<Warning>) -> Document {
        let mut parser = Parser {
            doc: Document::default(),
            warnings,
            open: None,
            in_dependencies: false,
            seen_heading: false,
            in_fence: false,
            after_task: false,
        };
        for (n, line) in text.lines().enumerate() {
            parser.line(n + 1, line);
        }
        parser.close();
        parser.doc
    }

    fn line(&mut self, n: usize, raw: &str) {
        let trimmed = raw.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            self.in_fence = !self.in_fence;
            self.after_task = false;
            return;
        }
        if self.in_fence {
            return;
        }
        if let Some((level, text)) = heading(trimmed) {
            self.heading(n, level, text);
        } else if let Some(task) = task_line(raw) {
            self.task(n, task);
        } else if self.after_task && raw.starts_with([' ', '\t']) && !trimmed.is_empty() {
            self.continuation(trimmed);
        } else {
            self.after_task = false;
            self.text(n, trimmed);
        }
    }

    fn heading(&mut self, n: usize, level: usize, text: &str) {
        self.after_task = false;
        if level == 1 {
            if self.doc.title.is_none() {
                self.doc.title = title_name(text);
            }
            return;
        }
        self.seen_heading = true;
        self.in_dependencies = is_dependency_heading(text);
        let number = phase_number(text);
        if let Some(open) = &self.open
            && level > open.level
            && number.is_none()
        {
            return;
        }
        self.close();
        self.open = Some(Section { line: n, level, heading: text.trim().to_owned(), number, ..Section::default() });
    }

    /// Ends the open section: kept when it has tasks, reported when it is a phase without any.
    fn close(&mut self) {
        let Some(section) = self.open.take() else { return };
        if !section.tasks.is_empty() {
            self.doc.sections.push(section);
        } else if section.number.is_some() {
            let message = format!("phase `{}` has no tasks; skipped", section.heading);
            self.warnings.push(Warning { line: section.line, message });
        }
    }

    fn task(&mut self, n: usize, parsed: Result<Task, String>) {
        self.after_task = false;
        let mut task = match parsed {
            Ok(task) => task,
            Err(text) => {
                let message = format!("checklist item without a task id (like T001) ignored: {text}");
                self.warnings.push(Warning { line: n, message });
                return;
            }
        };
        task.line = n;
        if task.text.is_empty() {
            self.warnings.push(Warning { line: n, message: format!("task {} has no description", task.id) });
            task.text = format!("Task {}", task.id.to_ascii_uppercase());
        }
        let section = self.open.get_or_insert_with(|| Section {
            line: n,
            level: 2,
            heading: "Tasks".to_owned(),
            ..Section::default()
        });
        section.tasks.push(task);
        self.after_task = true;
    }

    /// An indented line under a task: a bullet is one more checklist item, text adds to the
    /// instructions.
    fn continuation(&mut self, trimmed: &str) {
        let Some(task) = self.open.as_mut().and_then(|s| s.tasks.last_mut()) else { return };
        match trimmed.strip_prefix("- ").or_else(|| trimmed.strip_prefix("* ")) {
            Some(item) => task.items.push(strip_markdown(item).trim().to_owned()),
            None => task.notes.push(strip_markdown(trimmed).trim().to_owned()),
        }
    }

    fn text(&mut self, n: usize, trimmed: &str) {
        if trimmed.is_empty() || trimmed.chars().all(|c| matches!(c, '-' | '*' | '_' | '=')) {
            return;
        }
        if self.in_dependencies {
            self.doc.dependencies.push((n, trimmed.to_owned()));
        } else if let Some(section) = &mut self.open {
            if let Some((label, value)) = bold_label(trimmed) {
                if label.eq_ignore_ascii_case("checkpoint") {
                    section.checkpoint = Some(value);
                } else {
                    section.notes.push(format!("{label}: {value}"));
                }
            }
        } else if !self.seen_heading {
            self.doc.preamble.push(strip_markdown(trimmed).trim().to_owned());
        }
    }
}

/// `## Text` → (2, "Text").
fn heading(trimmed: &str) -> Option<(usize, &str)> {
    let level = trimmed.chars().take_while(|&c| c == '#').count();
    let rest = trimmed.get(level..)?;
    ((1..=6).contains(&level) && (rest.is_empty() || rest.starts_with(' '))).then(|| (level, rest.trim()))
}

/// The feature name of a `# Tasks: <name>` heading (the whole heading without the prefix);
/// `None` for a bare `# Tasks`, which names nothing.
fn title_name(text: &str) -> Option<String> {
    let text = strip_markdown(text);
    let name = match text.get(..5) {
        Some(prefix)
            if prefix.eq_ignore_ascii_case("tasks")
                && !text.get(5..).and_then(|r| r.chars().next()).is_some_and(char::is_alphanumeric) =>
        {
            text.get(5..).unwrap_or_default()
        }
        _ => text.as_str(),
    };
    let name = name.trim_start_matches([':', ' ', '-', '—', '–']).trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Headings whose section states the order of phases.
fn is_dependency_heading(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("depend") || lower.contains("execution order")
}

/// The `N` of a heading mentioning `Phase N`.
fn phase_number(text: &str) -> Option<u32> {
    let words = tokens(text);
    words.windows(2).find(|w| w[0] == "phase").and_then(|w| w[1].parse().ok())
}

/// `**Label**: value` or `**Label:** value` → (Label, value), markdown stripped.
fn bold_label(trimmed: &str) -> Option<(String, String)> {
    let rest = trimmed.strip_prefix("**")?;
    let (label, value) = rest.split_once("**")?;
    let (label, value) = match label.strip_suffix(':') {
        Some(label) => (label, value),
        None => (label, value.strip_prefix(':')?),
    };
    let label: String = label.chars().filter(|c| c.is_alphanumeric() || c.is_whitespace()).collect();
    Some((label.trim().to_owned(), strip_markdown(value).trim().to_owned()))
}

/// Removes bold/italic markers and trailing hard-break spaces; backticks are kept, they mark
/// paths and commands.
fn strip_markdown(text: &str) -> String {
    text.replace("**", "").replace("__", "").trim_end().to_owned()
}

/// A task id: `T` and digits, maybe a letter suffix (`T046B`).
fn is_task_id(word: &str) -> bool {
    let Some(rest) = word.strip_prefix(['T', 't']) else { return false };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && rest.chars().skip(digits).all(|c| c.is_ascii_alphabetic())
}

/// Parses a checklist line: `None` when it is not one, `Err(text)` when it has no task id.
fn task_line(raw: &str) -> Option<Result<Task, String>> {
    let trimmed = raw.trim_start();
    let rest = trimmed.strip_prefix(['-', '*', '+'])?.trim_start();
    let (done, rest) = if let Some(rest) = rest.strip_prefix("[ ]") {
        (false, rest)
    } else {
        (true, rest.strip_prefix("[x]").or_else(|| rest.strip_prefix("[X]"))?)
    };
    let rest = rest.trim_start();
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (word, rest) = rest.split_at(end);
    let word = word.trim_matches(|c| matches!(c, '*' | '[' | ']' | ':' | '`'));
    if !is_task_id(word) {
        return Some(Err(trimmed.to_owned()));
    }
    let mut task = Task { id: word.to_ascii_lowercase(), done, ..Task::default() };
    let text = tags(rest.trim_start(), &mut task);
    task.text = strip_markdown(text).trim().to_owned();
    Some(Ok(task))
}

/// Reads the `[P]`, `[US1]` and other short bracket tags in front of a description; returns
/// the description.
fn tags<'t>(mut rest: &'t str, task: &mut Task) -> &'t str {
    loop {
        if let Some(after) = rest.strip_prefix("(P)") {
            task.parallel = true;
            rest = after.trim_start();
            continue;
        }
        let Some((tag, after)) = rest.strip_prefix('[').and_then(|r| r.split_once(']')) else { return rest };
        let tag = tag.trim();
        if tag.eq_ignore_ascii_case("p") {
            task.parallel = true;
        } else if let Some(story) = story_tag(tag) {
            task.stories.push(story);
        } else if !tag.is_empty() && tag.len() <= 24 && !tag.contains(char::is_whitespace) {
            task.tags.push(slug(tag));
        } else {
            return rest;
        }
        rest = after.trim_start();
    }
}

/// `US1`, `US-1`, `us 1` → 1.
fn story_tag(tag: &str) -> Option<u32> {
    let rest = tag.get(..2).filter(|p| p.eq_ignore_ascii_case("us")).and_then(|_| tag.get(2..))?;
    rest.trim_start_matches(['-', ' ']).parse().ok()
}

fn check_duplicates(doc: &Document) -> Result<(), ImportError> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for task in doc.sections.iter().flat_map(|s| &s.tasks) {
        if let Some(&first) = seen.get(task.id.as_str()) {
            return Err(ImportError::DuplicateTask { id: task.id.to_ascii_uppercase(), line: task.line, first });
        }
        seen.insert(&task.id, task.line);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Ids and names

/// Lowercase ASCII letters and digits joined by single dashes, at most 48 characters.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(48);
    out.trim_end_matches('-').to_owned()
}

/// A slug made an identifier (it must start with a letter), or `None` when nothing is left.
fn identifier(text: &str, prefix: &str) -> Option<String> {
    let slug = slug(text);
    match slug.chars().next() {
        None => None,
        Some(c) if c.is_ascii_lowercase() => Some(slug),
        Some(_) => Some(format!("{prefix}-{slug}")),
    }
}

/// The id: the option, else the `# Tasks: <name>` heading, else the file name (its folder's
/// for spec-kit's usual `specs/<feature>/tasks.md`), else `speckit-tasks`.
fn protocol_id(doc: &Document, options: &ImportOptions) -> Result<String, ImportError> {
    if let Some(id) = &options.id {
        return if is_identifier(id) { Ok(id.clone()) } else { Err(ImportError::InvalidId(id.clone())) };
    }
    let from_file = options.file_name.as_deref().and_then(|name| {
        let path = Path::new(name);
        let stem = path.file_stem()?.to_str()?;
        let stem = match path.parent().and_then(Path::file_name).and_then(|p| p.to_str()) {
            Some(parent) if stem.eq_ignore_ascii_case("tasks") => parent,
            _ => stem,
        };
        identifier(stem, "tasks")
    });
    let id = doc
        .title
        .as_deref()
        .and_then(|t| identifier(t, "tasks"))
        .or(from_file)
        .unwrap_or_else(|| "speckit-tasks".to_owned());
    if is_identifier(&id) { Ok(id) } else { Err(ImportError::InvalidId(id)) }
}

/// What dependency sentences can refer a phase by.
#[derive(Debug, Clone)]
struct PhaseInfo {
    id: String,
    number: Option<u32>,
    story: Option<u32>,
    name: Option<String>,
}

/// Words that name no particular phase.
const NOT_NAMES: [&str; 8] = ["user", "story", "stories", "phase", "final", "tasks", "the", "implementation"];

fn phase_infos(doc: &Document) -> Vec<PhaseInfo> {
    let mut taken: BTreeSet<String> = doc.sections.iter().flat_map(|s| &s.tasks).map(|t| t.id.clone()).collect();
    let mut infos = Vec::new();
    for section in &doc.sections {
        let base = match section.number {
            Some(n) => format!("phase-{n}"),
            None => identifier(&section.heading, "phase").unwrap_or_else(|| "tasks".to_owned()),
        };
        let mut id = base.clone();
        let mut k = 2;
        while taken.contains(&id) {
            id = format!("{base}-{k}");
            k += 1;
        }
        taken.insert(id.clone());
        infos.push(PhaseInfo {
            id,
            number: section.number,
            story: section_story(section),
            name: phase_name(&section.heading),
        });
    }
    infos
}

/// The user story a section is about: named in its heading, else the most frequent `[USn]`.
fn section_story(section: &Section) -> Option<u32> {
    let words = tokens(&section.heading);
    let named = words.iter().enumerate().find_map(|(i, w)| {
        let after_user_story = w == "story" && i > 0 && words[i - 1] == "user";
        let next = words.get(i + 1).and_then(|n| n.parse().ok());
        if after_user_story { next } else { w.strip_prefix("us").and_then(|d| d.parse().ok()) }
    });
    named.or_else(|| {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for story in section.tasks.iter().flat_map(|t| &t.stories) {
            *counts.entry(*story).or_default() += 1;
        }
        counts.into_iter().max_by_key(|&(story, count)| (count, std::cmp::Reverse(story))).map(|(s, _)| s)
    })
}

/// The word a phase is called by ("Setup", "Foundational", "Polish"): the first word after
/// `Phase N:`.
fn phase_name(heading: &str) -> Option<String> {
    let words: Vec<String> = tokens(heading).into_iter().filter(|w| w.chars().all(char::is_alphanumeric)).collect();
    let start = match words.first().map(String::as_str) {
        Some("phase") => 2,
        _ => 0,
    };
    let name = words.get(start)?;
    (name.len() >= 4 && !NOT_NAMES.contains(&name.as_str()) && name.chars().all(|c| c.is_alphabetic()))
        .then(|| name.clone())
}

/// Splits text into lowercase words (letters and digits) and single punctuation characters.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Phase dependencies

/// How a sentence relates its two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    /// "A before B", "A blocks B": B needs A.
    Before,
    /// "A after B", "A depends on B", "A requires B": A needs B.
    After,
    /// "A: no dependencies".
    Independent,
}

/// A number or range after "Phase(s)" or "User Stor(y|ies)".
#[derive(Debug, Clone, Copy)]
enum Numbers {
    One(u32),
    Range(u32, u32),
    From(u32),
}

impl Numbers {
    fn contains(self, n: u32) -> bool {
        match self {
            Numbers::One(a) => n == a,
            Numbers::Range(a, b) => (a.min(b)..=a.max(b)).contains(&n),
            Numbers::From(a) => n >= a,
        }
    }
}

/// The phase graph read from the dependency section.
struct PhaseDeps<'p> {
    phases: &'p [PhaseInfo],
    needs: Vec<BTreeSet<usize>>,
    mentioned: Vec<bool>,
}

impl<'p> PhaseDeps<'p> {
    /// Each phase's needs (indices): the dependency section's where it is understood, the
    /// previous phase otherwise.
    fn resolve(
        phases: &'p [PhaseInfo],
        lines: &[(usize, String)],
        warnings: &mut Vec<Warning>,
    ) -> Vec<BTreeSet<usize>> {
        let sequential: Vec<BTreeSet<usize>> =
            (0..phases.len()).map(|p| p.checked_sub(1).into_iter().collect()).collect();
        let mut deps =
            PhaseDeps { phases, needs: vec![BTreeSet::new(); phases.len()], mentioned: vec![false; phases.len()] };
        for (line, text) in lines {
            if !deps.statement(text) && !deps.refs(&tokens(text)).is_empty() {
                let message = format!("dependency not understood, ignored: {}", strip_markdown(text));
                warnings.push(Warning { line: *line, message });
            }
        }
        if !deps.mentioned.contains(&true) {
            return sequential;
        }
        for p in 1..phases.len() {
            if !deps.mentioned[p] {
                deps.needs[p].insert(p - 1);
                let message = format!(
                    "the dependencies do not mention phase `{}`; it follows `{}`",
                    phases[p].id,
                    phases[p - 1].id
                );
                warnings.push(Warning { line: 0, message });
            }
        }
        if let Some(p) = cycle(&deps.needs) {
            let message =
                format!("the dependencies form a cycle through phase `{}`; phases run in document order", phases[p].id);
            warnings.push(Warning { line: 0, message });
            return sequential;
        }
        reduce(&deps.needs)
    }

    /// Reads one line (`**Subject**: clause - clause; clause.`); true when it said something.
    fn statement(&mut self, text: &str) -> bool {
        let text = strip_markdown(text.trim_start_matches(['-', '*', '+', ' ']));
        let (subject, rest) = match text.split_once(':') {
            Some((lead, rest)) if relation(&tokens(lead)).is_none() && !self.refs(&tokens(lead)).is_empty() => {
                (self.refs(&tokens(lead)), rest.to_owned())
            }
            _ => (BTreeSet::new(), text.clone()),
        };
        let mut understood = false;
        for clause in clauses(&rest) {
            let words = tokens(&clause);
            let Some((start, end, relation)) = relation(&words) else { continue };
            let mut left = self.refs(&words[..start]);
            if left.is_empty() {
                left.clone_from(&subject);
            }
            let right = self.refs(&words[end..]);
            understood |= match relation {
                Relation::Before => self.add(&right, &left),
                Relation::After => self.add(&left, &right),
                Relation::Independent => {
                    left.iter().for_each(|&p| self.mentioned[p] = true);
                    !left.is_empty()
                }
            };
        }
        understood
    }

    /// Records that every phase of `dependents` needs every phase of `prerequisites`.
    fn add(&mut self, dependents: &BTreeSet<usize>, prerequisites: &BTreeSet<usize>) -> bool {
        let mut added = false;
        for &d in dependents {
            for &p in prerequisites.iter().filter(|&&p| p != d) {
                self.needs[d].insert(p);
                self.mentioned[d] = true;
                added = true;
            }
        }
        added
    }

    /// The phases words refer to: `Phase 2`, `Phases 3–5`, `Phase 3+`, `final phase`, `US1`,
    /// `User Story 2`, `user stories` (all story phases), or a phase's name (`Setup`).
    fn refs(&self, words: &[String]) -> BTreeSet<usize> {
        let mut found = BTreeSet::new();
        for (i, word) in words.iter().enumerate() {
            let previous = i.checked_sub(1).and_then(|j| words.get(j)).map(String::as_str);
            match word.as_str() {
                "phase" | "phases" if matches!(previous, Some("final" | "last")) => {
                    found.extend(self.phases.len().checked_sub(1));
                }
                "phase" | "phases" => {
                    for numbers in number_list(words, i + 1) {
                        found.extend(self.matching(|p| p.number.is_some_and(|n| numbers.contains(n))));
                    }
                }
                "story" | "stories" if previous == Some("user") => {
                    let numbers = number_list(words, i + 1);
                    if numbers.is_empty() {
                        found.extend(self.matching(|p| p.story.is_some()));
                    }
                    for numbers in numbers {
                        found.extend(self.matching(|p| p.story.is_some_and(|n| numbers.contains(n))));
                    }
                }
                "stories" => found.extend(self.matching(|p| p.story.is_some())),
                other => {
                    if let Some(story) = other.strip_prefix("us").and_then(|d| d.parse::<u32>().ok()) {
                        found.extend(self.matching(|p| p.story == Some(story)));
                    } else {
                        found.extend(self.matching(|p| p.name.as_deref() == Some(other)));
                    }
                }
            }
        }
        found
    }

    fn matching(&self, keep: impl Fn(&PhaseInfo) -> bool) -> Vec<usize> {
        self.phases.iter().enumerate().filter(|(_, p)| keep(p)).map(|(i, _)| i).collect()
    }
}

/// The first relation word of a clause: (start, end) of the words, and the relation.
fn relation(words: &[String]) -> Option<(usize, usize, Relation)> {
    words.iter().enumerate().find_map(|(i, word)| {
        let next = words.get(i + 1).map(String::as_str);
        match word.as_str() {
            "before" | "blocks" | "block" | "blocking" => Some((i, i + 1, Relation::Before)),
            "after" | "until" | "requires" | "require" | "needs" => Some((i, i + 1, Relation::After)),
            "depends" | "depend" | "dependent" if matches!(next, Some("on" | "upon")) => {
                Some((i, i + 2, Relation::After))
            }
            "no" if matches!(next, Some("dependencies" | "dependency")) => Some((i, i + 2, Relation::Independent)),
            _ => None,
        }
    })
}

/// Numbers after `Phase`/`User Story`: `2`, `(3–5)`, `3+`, `3, 4 and 5`, `2/3`.
fn number_list(words: &[String], start: usize) -> Vec<Numbers> {
    let word = |j: usize| words.get(j).map(String::as_str);
    let number = |j: usize| word(j).and_then(|w| w.parse::<u32>().ok());
    let mut j = start;
    while word(j) == Some("(") {
        j += 1;
    }
    let mut found = Vec::new();
    while let Some(n) = number(j) {
        j += 1;
        if word(j) == Some("+") {
            found.push(Numbers::From(n));
            j += 1;
        } else if let (Some("-" | "–" | "—" | "to" | "through"), Some(m)) = (word(j), number(j + 1)) {
            found.push(Numbers::Range(n, m));
            j += 2;
        } else {
            found.push(Numbers::One(n));
        }
        if matches!(word(j), Some("," | "/" | "&" | "and" | "or")) && number(j + 1).is_some() {
            j += 1;
        } else {
            break;
        }
    }
    found
}

/// Splits a sentence into clauses at `;`, sentence ends and spaced dashes.
fn clauses(text: &str) -> Vec<String> {
    let marked = text.replace(" - ", ";").replace(" – ", ";").replace(" — ", ";").replace(". ", ";");
    marked.split(';').map(|c| c.trim().trim_end_matches('.').to_owned()).filter(|c| !c.is_empty()).collect()
}

/// A phase on a cycle of `needs`, if any (Kahn's algorithm).
fn cycle(needs: &[BTreeSet<usize>]) -> Option<usize> {
    let mut done = vec![false; needs.len()];
    loop {
        let ready: Vec<usize> = (0..needs.len())
            .filter(|&p| !done[p] && needs[p].iter().all(|&n| done.get(n).copied().unwrap_or(true)))
            .collect();
        if ready.is_empty() {
            return done.iter().position(|d| !d);
        }
        ready.into_iter().for_each(|p| done[p] = true);
    }
}

/// Drops needs implied by other needs (`4 needs 2 and 3, 3 needs 2` → `4 needs 3`), so the
/// protocol and its graph show only the direct order.
fn reduce(needs: &[BTreeSet<usize>]) -> Vec<BTreeSet<usize>> {
    let ancestors = |start: usize| {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = needs.get(start).map(|n| n.iter().copied().collect()).unwrap_or_default();
        while let Some(p) = stack.pop() {
            if seen.insert(p) {
                stack.extend(needs.get(p).into_iter().flatten().copied());
            }
        }
        seen
    };
    needs
        .iter()
        .map(|direct| {
            direct.iter().copied().filter(|&n| !direct.iter().any(|&m| m != n && ancestors(m).contains(&n))).collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Owners

/// Keywords per role; `*` marks a prefix (`deploy*` matches deploys, deployment), other words
/// match exactly or with a plural `s`.
const KEYWORDS: [(Role, &[&str]); 4] = [
    (
        Role::Devops,
        &[
            "terraform*",
            "iac",
            "cluster*",
            "deploy*",
            "pipeline*",
            "ci",
            "cd",
            "helm*",
            "argo*",
            "kubernetes",
            "k8s",
            "kubectl",
            "provision*",
            "ansible",
            "docker*",
            "container*",
            "workflow*",
            "makefile",
        ],
    ),
    (
        Role::Security,
        &[
            "secur*",
            "iam",
            "secret*",
            "tls",
            "ssl",
            "polic*",
            "rbac",
            "tfsec",
            "vulnerab*",
            "audit*",
            "encrypt*",
            "certificat*",
            "firewall*",
            "complian*",
            "credential*",
            "permission*",
        ],
    ),
    (
        Role::Sre,
        &[
            "monitor*",
            "alert*",
            "dashboard*",
            "slo",
            "sli",
            "log",
            "logging",
            "docs",
            "documentation",
            "document",
            "runbook*",
            "observab*",
            "grafana",
            "prometheus",
            "loki",
            "synthetic*",
            "probe*",
            "availability",
            "incident*",
            "readme",
            "quickstart",
        ],
    ),
    (Role::Resource, &["capacit*", "quota*", "cost*", "budget*", "billing", "spend*", "sizing", "rightsiz*"]),
];

fn keyword_matches(keyword: &str, word: &str) -> bool {
    match keyword.strip_suffix('*') {
        Some(prefix) => word.starts_with(prefix),
        None => word == keyword || word.strip_suffix('s') == Some(keyword),
    }
}

/// The role whose keywords the text mentions most (ties: the one mentioned first), or `None`
/// when it mentions none. Paths count: `infra/terraform/...` is Terraform work.
pub fn infer_owner(text: &str) -> Option<Role> {
    let words: Vec<String> =
        tokens(&split_camel_case(text)).into_iter().filter(|w| w.chars().all(char::is_alphanumeric)).collect();
    let mut best: Option<(usize, std::cmp::Reverse<usize>, Role)> = None;
    for (role, keywords) in KEYWORDS {
        let hits: Vec<usize> = words
            .iter()
            .enumerate()
            .filter(|(_, w)| keywords.iter().any(|k| keyword_matches(k, w)))
            .map(|(i, _)| i)
            .collect();
        let Some(&first) = hits.first() else { continue };
        let score = (hits.len(), std::cmp::Reverse(first), role);
        if best.is_none_or(|b| (score.0, score.1) > (b.0, b.1)) {
            best = Some(score);
        }
    }
    best.map(|(_, _, role)| role)
}

/// `NetworkPolicies` → `Network Policies`, so identifiers in task text count as words.
fn split_camel_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_uppercase() && previous_lower {
            out.push(' ');
        }
        previous_lower = c.is_lowercase();
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Building the protocol

fn assemble(
    id: String,
    doc: &Document,
    infos: &[PhaseInfo],
    needs: &[BTreeSet<usize>],
    options: &ImportOptions,
    warnings: &mut Vec<Warning>,
) -> Protocol {
    let exec: BTreeMap<String, &ExecMapping> = options.exec.iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let mut phases = Vec::new();
    for ((section, info), needs) in doc.sections.iter().zip(infos).zip(needs) {
        let needs = needs.iter().filter_map(|&n| infos.get(n)).map(|p| p.id.clone()).collect();
        phases.push(phase(section, info, needs, &exec, options));
    }
    note_unusual_tasks(doc, &exec, warnings);
    let (owner, participants) = roles(&phases, options.owner);
    let groups = groups(&phases);
    Protocol {
        id,
        version: None,
        title: doc.title.clone(),
        description: Some(description(doc)),
        owner,
        participants,
        source: Some(options.file_name.clone().unwrap_or_else(|| "spec-kit tasks.md".to_owned())),
        inputs: Default::default(),
        groups,
        phases,
        steps: Vec::new(),
        gates: Vec::new(),
        escalations: Vec::new(),
        ladder: None,
        metrics: BTreeMap::new(),
        slos: Vec::new(),
        triggers: Vec::new(),
        failure_scenarios: Vec::new(),
    }
}

/// Warns about `--exec` mappings for tasks that do not exist and about checked-off tasks.
fn note_unusual_tasks(doc: &Document, exec: &BTreeMap<String, &ExecMapping>, warnings: &mut Vec<Warning>) {
    let known: BTreeSet<&str> = doc.sections.iter().flat_map(|s| &s.tasks).map(|t| t.id.as_str()).collect();
    for unknown in exec.keys().filter(|k| !known.contains(k.as_str())) {
        let message = format!("--exec names task {} which the document does not have", unknown.to_ascii_uppercase());
        warnings.push(Warning { line: 0, message });
    }
    let done = doc.sections.iter().flat_map(|s| &s.tasks).filter(|t| t.done).count();
    if done > 0 {
        let message = format!("{done} tasks are already checked off; they are imported too, labelled `done`");
        warnings.push(Warning { line: 0, message });
    }
}

/// The `implementers` group, declared when some step is manual.
fn groups(phases: &[Phase]) -> BTreeMap<String, GroupSpec> {
    if !phases.iter().flat_map(|p| &p.steps).any(|s| s.manual.is_some()) {
        return BTreeMap::new();
    }
    let spec = GroupSpec {
        description: Some("People who carry out the tasks imported from spec-kit".to_owned()),
        channel: None,
        members: Vec::new(),
    };
    BTreeMap::from([(IMPLEMENTERS.to_owned(), spec)])
}

fn description(doc: &Document) -> String {
    let mut lines = vec!["Imported from a spec-kit tasks.md.".to_owned()];
    lines.extend(doc.preamble.iter().filter(|l| !l.is_empty()).cloned());
    lines.join("\n")
}

/// The protocol's owner (the option, else the role owning most steps) and the other roles.
fn roles(phases: &[Phase], owner: Option<Role>) -> (Option<Role>, Vec<Role>) {
    let mut counts: BTreeMap<Role, usize> = BTreeMap::new();
    for step in phases.iter().flat_map(|p| &p.steps) {
        *counts.entry(step.owner).or_default() += 1;
    }
    let owner = owner.or_else(|| {
        Role::ALL.into_iter().filter(|r| counts.contains_key(r)).max_by_key(|r| (counts.get(r), std::cmp::Reverse(*r)))
    });
    let participants = Role::ALL.into_iter().filter(|r| counts.contains_key(r) && Some(*r) != owner).collect();
    (owner, participants)
}

fn phase(
    section: &Section,
    info: &PhaseInfo,
    needs: Vec<String>,
    exec: &BTreeMap<String, &ExecMapping>,
    options: &ImportOptions,
) -> Phase {
    let mut labels: Vec<String> = info.story.map(|s| format!("us{s}")).into_iter().collect();
    let words = tokens(&section.heading);
    let priority =
        |w: &&String| w.strip_prefix('p').is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
    labels.extend(words.iter().filter(priority).take(1).cloned());
    if words.iter().any(|w| w == "mvp") {
        labels.push("mvp".to_owned());
    }
    let step_needs = task_needs(&section.tasks);
    let steps = section
        .tasks
        .iter()
        .zip(step_needs)
        .map(|(task, needs)| step(task, needs, exec.get(task.id.as_str()).copied(), options))
        .collect();
    Phase {
        id: info.id.clone(),
        title: Some(phase_title(&section.heading)),
        description: (!section.notes.is_empty()).then(|| section.notes.join("\n")),
        needs,
        when: None,
        checkpoint: section.checkpoint.clone().map(|c| Checkpoint { description: Some(c), record: Vec::new() }),
        labels,
        steps,
    }
}

/// A phase heading without its `Phase N:` prefix, which the phase id already says
/// (`Phase 1: Setup` → `Setup`).
fn phase_title(heading: &str) -> String {
    let lower = heading.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("phase").map(str::trim_start) else { return heading.to_owned() };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let after_number = &rest[digits..];
    let stripped = after_number.trim_start_matches([':', '-', '–', '—', '.', ' ']);
    if digits == 0 || stripped.is_empty() || stripped.len() == after_number.len() {
        return heading.to_owned();
    }
    heading.get(heading.len() - stripped.len()..).unwrap_or(heading).to_owned()
}

/// Within a phase: a `[P]` task needs the last task without `[P]` before it; a task without
/// `[P]` needs the `[P]` tasks since then, or else the task before it.
fn task_needs(tasks: &[Task]) -> Vec<Vec<String>> {
    let mut anchor: Option<&str> = None;
    let mut batch: Vec<&str> = Vec::new();
    let mut needs = Vec::new();
    for task in tasks {
        if task.parallel {
            needs.push(anchor.map(str::to_owned).into_iter().collect());
            batch.push(&task.id);
        } else {
            let joined: Vec<String> = if batch.is_empty() {
                anchor.map(str::to_owned).into_iter().collect()
            } else {
                batch.iter().map(|s| (*s).to_owned()).collect()
            };
            needs.push(joined);
            anchor = Some(&task.id);
            batch.clear();
        }
    }
    needs
}

fn step(task: &Task, needs: Vec<String>, exec: Option<&ExecMapping>, options: &ImportOptions) -> Step {
    let mut labels = Vec::new();
    if task.parallel {
        labels.push("parallel".to_owned());
    }
    labels.extend(task.stories.iter().map(|s| format!("us{s}")));
    labels.extend(task.tags.iter().filter(|t| !t.is_empty()).cloned());
    if task.done {
        labels.push("done".to_owned());
    }
    let details = std::iter::once(task.text.as_str()).chain(task.items.iter().map(String::as_str));
    let owner =
        options.owner.or_else(|| infer_owner(&details.collect::<Vec<_>>().join(" "))).unwrap_or(options.default_owner);
    let mut step = Step {
        id: task.id.clone(),
        owner,
        title: Some(task.text.clone()),
        description: (!task.notes.is_empty()).then(|| task.notes.join("\n")),
        needs,
        when: None,
        labels,
        timeout: None,
        retry: None,
        alternatives: Vec::new(),
        rollback: None,
        on_failure: None,
        outputs: Default::default(),
        checkpoint: None,
        exec: None,
        http: None,
        tcp: None,
        tls: None,
        wait: None,
        form: None,
        approval: None,
        decision: None,
        manual: None,
    };
    match exec {
        Some(mapping) => {
            step.exec = Some(ExecAction {
                program: Some(mapping.program.clone()),
                args: mapping.args.clone(),
                shell: None,
                env: BTreeMap::new(),
                cwd: None,
            });
        }
        None => {
            let mut instructions = task.text.clone();
            for note in &task.notes {
                instructions.push('\n');
                instructions.push_str(note);
            }
            let checklist = std::iter::once(task.text.clone()).chain(task.items.iter().cloned()).collect();
            let responders = Responders { groups: vec![IMPLEMENTERS.to_owned()], users: Vec::new() };
            step.manual = Some(ManualAction { instructions, checklist, responders, deadline: options.deadline });
            step.timeout = options.deadline;
        }
    }
    step
}

// ---------------------------------------------------------------------------------------------
// Mis-encoded text

/// The Windows-1252 byte a character stands for, for the characters above ASCII.
fn cp1252_byte(c: char) -> Option<u8> {
    let code = u32::from(c);
    if (0x80..=0xFF).contains(&code) {
        return u8::try_from(code).ok();
    }
    let byte = match c {
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8A,
        '‹' => 0x8B,
        'Œ' => 0x8C,
        'Ž' => 0x8E,
        '\u{2018}' => 0x91,
        '\u{2019}' => 0x92,
        '\u{201C}' => 0x93,
        '\u{201D}' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9A,
        '›' => 0x9B,
        'œ' => 0x9C,
        'ž' => 0x9E,
        'Ÿ' => 0x9F,
        _ => return None,
    };
    Some(byte)
}

/// Repairs text that was UTF-8, read as Windows-1252 and saved as UTF-8 again (`ðŸŽ¯` → 🎯,
/// `â€“` → –), as documents pasted through some tools are; returns the text and how many
/// characters were repaired. Runs that do not decode as UTF-8 (real `é`, `–`) are kept.
fn repair_mojibake(text: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut run: Vec<char> = Vec::new();
    let mut repaired = 0;
    for c in text.chars() {
        if cp1252_byte(c).is_some() {
            run.push(c);
        } else {
            repaired += flush_run(&mut run, &mut out);
            out.push(c);
        }
    }
    repaired += flush_run(&mut run, &mut out);
    (out, repaired)
}

/// Writes a run of non-ASCII Windows-1252 characters, decoding the parts that are UTF-8.
fn flush_run(run: &mut Vec<char>, out: &mut String) -> usize {
    let bytes: Vec<u8> = run.iter().filter_map(|&c| cp1252_byte(c)).collect();
    let mut repaired = 0;
    let mut offset = 0;
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        repaired += chunk.valid().chars().count();
        offset += chunk.valid().len();
        let invalid = chunk.invalid().len();
        out.extend(run.iter().skip(offset).take(invalid));
        offset += invalid;
    }
    run.clear();
    repaired
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{self, Format};
    use muster_schemas::protocol::model::action::HasAction;
    use muster_schemas::protocol::parse_protocol;

    const SEED: &str = include_str!("../../tests/fixtures/speckit-tasks.md");

    fn import_ok(markdown: &str, options: &ImportOptions) -> (Protocol, Vec<Warning>) {
        let (protocol, warnings) = import(markdown, options).unwrap_or_else(|e| panic!("{e}"));
        assert!(check(&protocol).is_empty(), "{:?}", check(&protocol));
        (protocol, warnings)
    }

    fn step<'p>(protocol: &'p Protocol, id: &str) -> &'p Step {
        protocol.step(id).unwrap_or_else(|| panic!("no step {id}"))
    }

    #[test]
    fn the_seed_imports_with_41_tasks_in_6_phases() {
        let (protocol, warnings) = import_ok(SEED, &ImportOptions::default());
        assert_eq!(protocol.id, "infrastructure-provisioning");
        assert_eq!(protocol.title.as_deref(), Some("Infrastructure Provisioning"));
        let ids: Vec<&str> = protocol.all_steps().map(|(_, s)| s.id.as_str()).collect();
        let expected: Vec<String> = (1..=41).map(|n| format!("t{n:03}")).collect();
        assert_eq!(ids, expected);
        let phase_ids: Vec<&str> = protocol.phases.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(phase_ids, ["phase-1", "phase-2", "phase-3", "phase-4", "phase-5", "phase-6"]);
        let sizes: Vec<usize> = protocol.phases.iter().map(|p| p.steps.len()).collect();
        assert_eq!(sizes, [5, 5, 14, 5, 7, 5]);
        let parallel = protocol.all_steps().filter(|(_, s)| s.labels.iter().any(|l| l == "parallel")).count();
        assert_eq!(parallel, 16);
        for (story, count) in [("us1", 14), ("us2", 5), ("us3", 7)] {
            let n = protocol.all_steps().filter(|(_, s)| s.labels.iter().any(|l| l == story)).count();
            assert_eq!(n, count, "{story}");
        }
        assert!(warnings.iter().any(|w| w.message.contains("encoded twice")), "{warnings:?}");
        assert_eq!(
            protocol.phases[2].title.as_deref(),
            Some("User Story 1 - Stand up foundational environments safely (Priority: P1) 🎯 MVP")
        );
        assert_eq!(protocol.phases[0].title.as_deref(), Some("Setup (Shared Infrastructure)"));
        assert_eq!(protocol.phases[2].labels, ["us1", "p1", "mvp"]);
        assert_eq!(protocol.phases[3].labels, ["us2", "p2"]);
    }

    #[test]
    fn the_seed_dependency_section_is_honoured() {
        let (protocol, warnings) = import_ok(SEED, &ImportOptions::default());
        let needs: Vec<(&str, Vec<&str>)> =
            protocol.phases.iter().map(|p| (p.id.as_str(), p.needs.iter().map(String::as_str).collect())).collect();
        assert_eq!(
            needs,
            [
                ("phase-1", vec![]),
                ("phase-2", vec!["phase-1"]),
                ("phase-3", vec!["phase-2"]),
                ("phase-4", vec!["phase-3"]),
                ("phase-5", vec!["phase-3"]),
                ("phase-6", vec!["phase-4", "phase-5"]),
            ]
        );
        assert!(!warnings.iter().any(|w| w.message.contains("do not mention")), "{warnings:?}");
    }

    #[test]
    fn parallel_tasks_fan_out_and_the_next_task_joins_them() {
        let (protocol, _) = import_ok(SEED, &ImportOptions::default());
        let needs = |id: &str| step(&protocol, id).needs.clone();
        assert!(needs("t001").is_empty());
        for id in ["t002", "t003", "t004"] {
            assert_eq!(needs(id), ["t001"]);
        }
        assert_eq!(needs("t005"), ["t002", "t003", "t004"]);
        assert!(needs("t006").is_empty(), "the first task of a phase waits through the phase's needs");
        assert_eq!(needs("t008"), ["t007"]);
        assert_eq!(needs("t012"), ["t011"]);
        assert_eq!(needs("t014"), ["t012", "t013"]);
        assert!(needs("t037").is_empty() && needs("t038").is_empty());
        assert_eq!(needs("t039"), ["t037", "t038"]);
        assert_eq!(needs("t041"), ["t040"]);
    }

    #[test]
    fn tasks_become_manual_steps_for_implementers() {
        let (protocol, _) = import_ok(SEED, &ImportOptions::default());
        assert!(protocol.groups.contains_key(IMPLEMENTERS));
        let t003 = step(&protocol, "t003");
        assert!(t003.title.as_deref().is_some_and(|t| t.starts_with("Configure Terraform remote backend")));
        assert_eq!(t003.labels, ["parallel"]);
        let manual = t003.manual.as_ref().unwrap_or_else(|| panic!("t003 is not manual"));
        assert_eq!(manual.instructions, t003.title.clone().unwrap_or_default());
        assert_eq!(manual.checklist, std::slice::from_ref(&manual.instructions));
        assert_eq!(manual.responders.groups, [IMPLEMENTERS]);
        assert_eq!(step(&protocol, "t012").labels, ["parallel", "us1"]);
        assert!(protocol.all_steps().all(|(_, s)| s.action().is_some_and(|a| a.key() == "manual")));
    }

    #[test]
    fn owners_are_inferred_from_keywords() {
        let (protocol, _) = import_ok(SEED, &ImportOptions::default());
        let owner = |id: &str| step(&protocol, id).owner;
        assert_eq!(owner("t003"), Role::Devops, "terraform backend");
        assert_eq!(owner("t024"), Role::Resource, "capacity quotas");
        assert_eq!(owner("t023"), Role::Sre, "alert routing, availability SLO");
        assert_eq!(owner("t031"), Role::Security, "RBAC bundles, AccessPolicy");
        assert_eq!(owner("t037"), Role::Sre, "runbooks");
        let used: BTreeSet<Role> = protocol.all_steps().map(|(_, s)| s.owner).collect();
        assert_eq!(used.len(), 4, "every role gets work");
        assert_eq!(protocol.owner, Some(Role::Devops));
        assert_eq!(owner("t030"), Role::Security, "NetworkPolicies");
        assert_eq!(infer_owner("Write the onboarding guide"), None);
        assert_eq!(infer_owner("Rotate TLS certificates"), Some(Role::Security));
        assert_eq!(infer_owner("Set up CI for the service"), Some(Role::Devops));
        assert_eq!(infer_owner("Add cost dashboards"), Some(Role::Resource), "a tie goes to the first mentioned");
    }

    #[test]
    fn options_override_id_owner_and_map_tasks_to_programs() {
        let mut options = ImportOptions {
            id: Some("infra".to_owned()),
            owner: Some(Role::Sre),
            deadline: Some(DurationSpec(std::time::Duration::from_secs(3 * 86400))),
            ..ImportOptions::default()
        };
        let (id, mapping) = parse_exec_mapping("T039=make lint").unwrap_or_else(|e| panic!("{e}"));
        options.exec.insert(id, mapping);
        options.exec.insert("T999".to_owned(), ExecMapping { program: "true".to_owned(), args: Vec::new() });
        let (protocol, warnings) = import_ok(SEED, &options);
        assert_eq!(protocol.id, "infra");
        assert!(protocol.all_steps().all(|(_, s)| s.owner == Role::Sre));
        assert!(protocol.participants.is_empty());
        let t039 = step(&protocol, "t039");
        let exec = t039.exec.as_ref().unwrap_or_else(|| panic!("t039 not mapped"));
        assert_eq!((exec.program.as_deref(), exec.args.as_slice()), (Some("make"), &["lint".to_owned()][..]));
        assert!(t039.manual.is_none());
        let t001 = step(&protocol, "t001");
        assert_eq!(t001.manual.as_ref().and_then(|m| m.deadline), options.deadline);
        assert_eq!(t001.timeout, options.deadline);
        assert!(warnings.iter().any(|w| w.message.contains("T999")));
        assert!(import(SEED, &ImportOptions { id: Some("Bad Id".into()), ..ImportOptions::default() }).is_err());
        assert!(parse_exec_mapping("T1").is_err() && parse_exec_mapping("x=make").is_err());
    }

    #[test]
    fn the_seed_round_trips_through_yaml_and_graphs() {
        let (protocol, _) = import_ok(SEED, &ImportOptions::default());
        let yaml = to_yaml(&protocol).unwrap_or_else(|e| panic!("{e}"));
        let back = parse_protocol("imported.yaml", &yaml).unwrap_or_else(|d| panic!("{d:#?}\n{yaml}"));
        assert_eq!(back, protocol);
        for format in [Format::Mermaid, Format::Dot] {
            let out = graph::render(&protocol, format);
            for (_, s) in protocol.all_steps() {
                assert!(out.contains(&s.id), "{} missing from the {format} graph", s.id);
            }
            match format {
                Format::Mermaid => {
                    assert_eq!(out.matches("subgraph ").count(), 6);
                    graph::tests::check_mermaid_structure(&out);
                }
                Format::Dot => {
                    assert_eq!(out.matches("subgraph cluster_").count(), 6);
                    graph::tests::check_dot_structure(&out);
                    if std::process::Command::new("dot").arg("-V").output().is_ok_and(|o| o.status.success()) {
                        graph::tests::assert_graphviz_accepts(&out);
                    }
                }
            }
        }
    }

    /// The shape of spec-kit's own template: sub-headings inside phases, a checkpoint, and the
    /// `**Subject**: relation` dependency bullets.
    const TEMPLATE: &str = "# Tasks: Photo Albums\n\n\
        ## Phase 1: Setup (Shared Infrastructure)\n\n\
        - [ ] T001 Create project structure per implementation plan\n\
        - [ ] T002 [P] Configure linting and formatting tools\n\n\
        ## Phase 2: Foundational (Blocking Prerequisites)\n\n\
        **Purpose**: Core infrastructure\n\n\
        - [ ] T003 Setup database schema and migrations framework\n\n\
        **Checkpoint**: Foundation ready\n\n\
        ## Phase 3: User Story 1 - Albums (Priority: P1) 🎯 MVP\n\n\
        ### Tests for User Story 1\n\n\
        - [ ] T004 [P] [US1] Contract test for albums in tests/contract/test_albums.py\n\
        ### Implementation for User Story 1\n\n\
        - [ ] T005 [US1] Implement albums service in src/services/albums.py\n\
        \x20 - handle empty albums\n\
        \x20 Keep the API stable.\n\n\
        ## Phase 4: User Story 2 - Sharing (Priority: P2)\n\n\
        - [x] T006 [US2] Implement sharing in src/services/sharing.py\n\n\
        ## Phase 5: Polish & Cross-Cutting Concerns\n\n\
        - [ ] T007 [P] Documentation updates in docs/\n\n\
        ## Dependencies & Execution Order\n\n\
        ### Phase Dependencies\n\n\
        - **Setup (Phase 1)**: No dependencies - can start immediately\n\
        - **Foundational (Phase 2)**: Depends on Setup completion - BLOCKS all user stories\n\
        - **User Stories (Phase 3+)**: All depend on Foundational phase completion\n\
        \x20 - User stories can then proceed in parallel (if staffed)\n\
        - **Polish (Final Phase)**: Depends on all desired user stories being complete\n\n\
        ### Within Each User Story\n\n\
        - Tests MUST be written and FAIL before implementation\n\n\
        ```text\n- [ ] T999 not a task: inside a code block\n```\n";

    #[test]
    fn the_spec_kit_template_shape_imports() {
        let (protocol, warnings) = import_ok(TEMPLATE, &ImportOptions::default());
        assert_eq!(protocol.id, "photo-albums");
        let needs: Vec<Vec<&str>> =
            protocol.phases.iter().map(|p| p.needs.iter().map(String::as_str).collect()).collect();
        let expected: Vec<Vec<&str>> =
            vec![vec![], vec!["phase-1"], vec!["phase-2"], vec!["phase-2"], vec!["phase-3", "phase-4"]];
        assert_eq!(needs, expected, "{warnings:?}");
        assert_eq!(protocol.phases[2].steps.len(), 2, "sub-headings stay in their phase");
        assert_eq!(step(&protocol, "t005").needs, ["t004"]);
        let t005 = step(&protocol, "t005").manual.clone().unwrap_or_else(|| panic!("manual"));
        assert_eq!(t005.checklist.len(), 2);
        assert!(t005.instructions.ends_with("\nKeep the API stable."));
        assert_eq!(step(&protocol, "t006").labels, ["us2", "done"]);
        let phase2 = &protocol.phases[1];
        assert_eq!(phase2.description.as_deref(), Some("Purpose: Core infrastructure"));
        assert_eq!(phase2.checkpoint.as_ref().and_then(|c| c.description.as_deref()), Some("Foundation ready"));
        assert!(protocol.step("t999").is_none());
        assert!(warnings.iter().any(|w| w.message.contains("not understood") && w.message.contains("in parallel")));
        assert!(warnings.iter().any(|w| w.message.contains("checked off")));
    }

    #[test]
    fn without_a_dependency_section_phases_are_sequential() {
        let text = "## Phase 1: A\n- [ ] T001 One\n## Phase 2: B\n- [ ] T002 Two\n## Phase 3: C\n- [ ] T003 Three\n";
        let options =
            ImportOptions { file_name: Some("specs/001-demo/tasks.md".to_owned()), ..ImportOptions::default() };
        let (protocol, _) = import_ok(text, &options);
        assert_eq!(protocol.id, "tasks-001-demo");
        assert_eq!(protocol.source.as_deref(), Some("specs/001-demo/tasks.md"));
        let needs: Vec<&[String]> = protocol.phases.iter().map(|p| p.needs.as_slice()).collect();
        assert_eq!(needs, [&[][..], &["phase-1".to_owned()][..], &["phase-2".to_owned()][..]]);
        assert!(protocol.steps.is_empty());
    }

    #[test]
    fn partial_or_cyclic_dependencies_fall_back_with_warnings() {
        let partial = "## Phase 1: A\n- [ ] T001 One\n## Phase 2: B\n- [ ] T002 Two\n## Phase 3: C\n- [ ] T003 Three\n\
            ## Dependencies\n- Phase 3 runs after Phase 1\n";
        let (protocol, warnings) = import_ok(partial, &ImportOptions::default());
        assert_eq!(protocol.phases[2].needs, ["phase-1"]);
        assert_eq!(protocol.phases[1].needs, ["phase-1"]);
        assert!(warnings.iter().any(|w| w.message.contains("do not mention phase `phase-2`")));
        let cyclic = "## Phase 1: A\n- [ ] T001 One\n## Phase 2: B\n- [ ] T002 Two\n\
            ## Dependencies\n- Phase 1 depends on Phase 2\n- Phase 2 depends on Phase 1\n";
        let (protocol, warnings) = import_ok(cyclic, &ImportOptions::default());
        assert_eq!(protocol.phases[1].needs, ["phase-1"]);
        assert!(protocol.phases[0].needs.is_empty());
        assert!(warnings.iter().any(|w| w.message.contains("cycle")));
    }

    #[test]
    fn errors_are_reported() {
        assert!(matches!(
            import("# Tasks: Nothing\n\nJust prose.\n", &ImportOptions::default()),
            Err(ImportError::NoTasks)
        ));
        let twice = "## Phase 1: A\n- [ ] T001 One\n- [ ] T001 Again\n";
        assert!(matches!(
            import(twice, &ImportOptions::default()),
            Err(ImportError::DuplicateTask { line: 3, first: 2, .. })
        ));
        let no_id = "## Phase 1: A\n- [ ] T001 One\n- [ ] Write more tests\n";
        let (_, warnings) = import_ok(no_id, &ImportOptions::default());
        assert!(warnings.iter().any(|w| w.line == 3 && w.message.contains("without a task id")));
    }

    #[test]
    fn headings_without_phase_numbers_become_phases_when_they_hold_tasks() {
        let text = "# Tasks\n- [ ] T001 Loose task\n## Backend work\n- [ ] T002 [P] Build API\n- [ ] T003 [P] Build DB\n## Notes\nnothing\n";
        let (protocol, _) = import_ok(text, &ImportOptions::default());
        let ids: Vec<&str> = protocol.phases.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["tasks", "backend-work"]);
        assert_eq!(protocol.id, "speckit-tasks");
        assert!(step(&protocol, "t002").needs.is_empty() && step(&protocol, "t003").needs.is_empty());
    }

    #[test]
    fn phase_titles_drop_the_phase_number() {
        assert_eq!(phase_title("Phase 1: Setup"), "Setup");
        assert_eq!(phase_title("Phase 12 — Ünïcode"), "Ünïcode");
        assert_eq!(phase_title("Phase 3"), "Phase 3");
        assert_eq!(phase_title("Phases of the moon"), "Phases of the moon");
        assert_eq!(phase_title("Backend work"), "Backend work");
    }

    #[test]
    fn titles_name_the_feature() {
        assert_eq!(title_name("Tasks: Photo Albums").as_deref(), Some("Photo Albums"));
        assert_eq!(title_name("Tasks — **Login**").as_deref(), Some("Login"));
        assert_eq!(title_name("Tasksmith rollout").as_deref(), Some("Tasksmith rollout"));
        assert_eq!(title_name("Tasks"), None);
    }

    #[test]
    fn mojibake_is_repaired_and_real_text_kept() {
        assert_eq!(repair_mojibake("(3â€“5) ðŸŽ¯ MVP"), ("(3–5) 🎯 MVP".to_owned(), 2));
        assert_eq!(repair_mojibake("café – “quoted” naïve"), ("café – “quoted” naïve".to_owned(), 0));
        assert_eq!(repair_mojibake("â€“é"), ("–é".to_owned(), 1));
    }

    #[test]
    fn dependency_sentences_resolve_to_phases() {
        let phases: Vec<PhaseInfo> = [
            (1, None, Some("setup")),
            (2, None, Some("foundational")),
            (3, Some(1), None),
            (4, Some(2), None),
            (5, None, Some("polish")),
        ]
        .into_iter()
        .map(|(n, story, name)| PhaseInfo {
            id: format!("phase-{n}"),
            number: Some(n),
            story,
            name: name.map(str::to_owned),
        })
        .collect();
        let deps = PhaseDeps { phases: &phases, needs: vec![BTreeSet::new(); 5], mentioned: vec![false; 5] };
        let refs = |text: &str| deps.refs(&tokens(text)).into_iter().collect::<Vec<_>>();
        assert_eq!(refs("Phases 2 to 4"), [1, 2, 3]);
        assert_eq!(refs("Phase 3+"), [2, 3, 4]);
        assert_eq!(refs("phases 1, 2 and 5"), [0, 1, 4]);
        assert_eq!(refs("the final phase"), [4]);
        assert_eq!(refs("US2/US1"), [2, 3]);
        assert_eq!(refs("User Story 2"), [3]);
        assert_eq!(refs("all user stories"), [2, 3]);
        assert_eq!(refs("Setup and Polish"), [0, 4]);
        assert!(refs("the same files").is_empty());
        assert_eq!(clauses("A - B; C. D"), ["A", "B", "C", "D"]);
    }
}
