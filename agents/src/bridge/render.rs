//! The words the bridge posts. Plain text only: what the orchestrator and people wrote is shown
//! as it is, never interpreted as markup.

use super::commands::{self, Command, PromptId};
use jiff::Timestamp;
use muster_schemas::answer::AnswerAction;
use muster_schemas::message::PromptNotice;
use muster_schemas::protocol::model::Severity;

/// A notice as a chat message: the prompt and its title, the context package, the options with
/// what each does, the deadline, who is asked, and how to answer.
pub fn notice(notice: &PromptNotice, prompt: Option<PromptId>, now: Timestamp) -> String {
    let id = prompt.map_or_else(|| notice.prompt.clone(), |p| p.to_string());
    let severity = notice.severity.map(|s| format!("{} ", severity(s))).unwrap_or_default();
    let mut out = format!("[{id}] {severity}{} ({})\n", notice.title.trim(), stage(&notice.stage));
    let text = notice.text.trim();
    if !text.is_empty() {
        out.push('\n');
        out.push_str(text);
        out.push('\n');
    }
    if !notice.options.is_empty() {
        out.push_str("\nOptions:\n");
        for option in &notice.options {
            out.push_str(&format!("  • {} — {} (effect: {})\n", option.id, option.description.trim(), option.effect));
        }
    }
    if let Some(deadline) = notice.deadline {
        out.push_str(&format!(
            "\nDeadline: {} ({})\n",
            deadline.strftime("%Y-%m-%d %H:%M:%S UTC"),
            relative(deadline, now)
        ));
    }
    if !notice.responders.is_empty() {
        out.push_str(&format!("For: {}\n", notice.responders.join(", ")));
    }
    if let Some(prompt) = prompt.filter(|_| is_open(&notice.stage)) {
        out.push_str("\nAnswer here:\n");
        for usage in commands::usage(prompt) {
            out.push_str(&format!("  {usage}\n"));
        }
    }
    out.trim_end().to_owned()
}

/// Responders that are Matrix users, to mention (and so notify) them.
pub fn mentions(notice: &PromptNotice) -> Vec<String> {
    notice.responders.iter().filter(|r| r.starts_with('@') && r.contains(':')).cloned().collect()
}

/// Whether a stage still takes answers (no answer commands under a closed prompt).
fn is_open(stage: &str) -> bool {
    !matches!(stage, "answered" | "rejected" | "expired" | "closed")
}

fn stage(stage: &str) -> String {
    match stage {
        "raised" => "new".into(),
        "renotified" => "reminder".into(),
        "decision_due" => "decision due".into(),
        "follow_up" => "follow-up".into(),
        "progress" => "partly answered".into(),
        other => other.replace('_', " "),
    }
}

fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "🚨 CRITICAL",
        Severity::High => "🔴 high",
        Severity::Medium => "🟠 medium",
        Severity::Low => "🔵 low",
    }
}

/// `in 14 min`, `3 min ago`.
fn relative(at: Timestamp, now: Timestamp) -> String {
    let seconds = at.as_second() - now.as_second();
    let minutes = seconds.unsigned_abs().div_ceil(60);
    let span = if minutes >= 120 { format!("{} h", minutes / 60) } else { format!("{minutes} min") };
    if seconds >= 0 { format!("in {span}") } else { format!("{span} ago") }
}

/// What a command asked for, in words, for confirmations.
pub fn summary(command: &Command) -> String {
    match command {
        Command::Help => "help".into(),
        Command::Show(prompt) => format!("show {prompt}"),
        Command::Answer { prompt, action, note } => {
            let what = match action {
                AnswerAction::Acknowledge => format!("ack {prompt}"),
                AnswerAction::Choose { option } => format!("answer {prompt} {option}"),
                AnswerAction::Fill { fields } => {
                    let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    format!("form {prompt} {}", fields.join(" "))
                }
                AnswerAction::Approve { binding: None } => format!("approve {prompt}"),
                AnswerAction::Approve { binding: Some(binding) } => format!("approve {prompt} {binding}"),
                AnswerAction::Reject { reason } => format!("reject {prompt}: {reason}"),
                AnswerAction::Confirm => format!("done {prompt}"),
            };
            match note {
                Some(note) => format!("{what} (because {note})"),
                None => what,
            }
        }
    }
}

/// The orchestrator took the answer.
pub fn accepted(sender: &str, command: &Command, message: &str) -> String {
    let message = message.trim();
    if message.is_empty() {
        format!("✅ {sender}: recorded `{}`.", summary(command))
    } else {
        format!("✅ {sender}: recorded `{}`. {message}", summary(command))
    }
}

/// The orchestrator refused the answer: its reason, verbatim.
pub fn refused(sender: &str, command: &Command, reason: &str) -> String {
    format!("❌ {sender}: `{}` was refused: {reason}", summary(command))
}

/// The answer may not have arrived; say what the person can do.
pub fn not_delivered(sender: &str, command: &Command, why: &str) -> String {
    format!("⚠️ {sender}: `{}` was not recorded: {why}", summary(command))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use muster_schemas::message::{NoticeOption, PromptKind};
    use uuid::Uuid;

    fn escalation() -> PromptNotice {
        PromptNotice {
            run_id: Uuid::nil(),
            prompt: "ESC-1".into(),
            kind: PromptKind::Escalation,
            stage: "raised".into(),
            severity: Some(Severity::High),
            title: "Disk full on db-1".into(),
            text: "The deploy step failed: no space left on device.".into(),
            options: vec![
                NoticeOption {
                    id: "rollback".into(),
                    description: "Undo the deploy".into(),
                    effect: "rollback".into(),
                },
                NoticeOption { id: "retry".into(), description: "Try again".into(), effect: "retry".into() },
            ],
            responders: vec!["@alice:localhost".into(), "sre-oncall".into()],
            channel: None,
            deadline: Some("2026-01-01T00:15:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn a_notice_carries_everything_needed_to_answer() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let text = notice(&escalation(), PromptId::parse("ESC-1"), now);
        for needle in [
            "[ESC-1] 🔴 high Disk full on db-1 (new)",
            "no space left on device",
            "• rollback — Undo the deploy (effect: rollback)",
            "Deadline: 2026-01-01 00:15:00 UTC (in 14 min)",
            "For: @alice:localhost, sre-oncall",
            "answer ESC-1 <option> [because <why>]",
            "ack ESC-1",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        assert_eq!(mentions(&escalation()), vec!["@alice:localhost".to_owned()]);
        let mut closed = escalation();
        closed.stage = "answered".into();
        assert!(!notice(&closed, PromptId::parse("ESC-1"), now).contains("Answer here"));
    }

    #[test]
    fn confirmations_say_what_happened() {
        let command = Command::Answer {
            prompt: PromptId::parse("ESC-1").unwrap(),
            action: AnswerAction::Choose { option: "rollback".into() },
            note: Some("disk full".into()),
        };
        assert_eq!(
            accepted("@alice:localhost", &command, "The run rolls back."),
            "✅ @alice:localhost: recorded `answer ESC-1 rollback (because disk full)`. The run rolls back."
        );
        assert!(refused("@mallory:localhost", &command, "not a responder").ends_with(": not a responder"));
    }
}
