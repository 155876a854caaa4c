//! What muster says in Slack: notices with one button per option, and replies to commands
//! and clicks.
//!
//! Everything that came from elsewhere (titles, notice text, option ids, notes, the
//! orchestrator's messages) is data: it goes into `plain_text` objects, or into `mrkdwn`
//! only after [`escape`], so a title like `<!channel>` or `<https://evil|click>` shows as
//! typed instead of pinging a channel or hiding a link. Slack's length limits are applied by
//! clipping, never by failing the post.

use super::sink::clip;
use muster_schemas::message::PromptNotice;
use serde::Serialize;
use serde_json::{Value, json};

/// Slack's limit on a header block's text.
const HEADER_MAX: usize = 150;
/// Slack's limit on a section block's text.
const SECTION_MAX: usize = 3000;
/// Slack's limit on a button's label.
const BUTTON_TEXT_MAX: usize = 75;
/// Slack's limit on a button's value.
const BUTTON_VALUE_MAX: usize = 2000;
/// Slack's limit on elements in one actions block.
const BUTTONS_PER_BLOCK: usize = 25;
/// How many actions blocks a notice uses at most (Slack allows 50 blocks in a message).
const MAX_ACTION_BLOCKS: usize = 4;
/// Stages after which the prompt takes no answers, so the notice has no buttons.
const FINAL_STAGES: [&str; 3] = ["answered", "expired", "closed"];

/// Makes text safe for a `mrkdwn` field: Slack reads `<...>` as mentions and links and `&` as
/// the start of an entity, and these three escapes are the ones it documents.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A mention of the Slack user, or their id as text when it does not look like a Slack id.
pub fn mention(user_id: &str) -> String {
    let is_slack_id = !user_id.is_empty()
        && user_id.len() <= 32
        && user_id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if is_slack_id { format!("<@{user_id}>") } else { escape(user_id) }
}

/// Who sees a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseType {
    /// Only the person who typed or clicked: refusals and help.
    Ephemeral,
    /// Everyone in the channel: a decision others need to know about.
    InChannel,
}

/// A reply to a slash command or a click, in Slack's message format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlackReply {
    /// Who sees it.
    pub response_type: ResponseType,
    /// The words (`mrkdwn`, already escaped where needed).
    pub text: String,
    /// Keep the notice the button was on; the reply is a new message under it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_original: Option<bool>,
}

impl SlackReply {
    /// A reply only the person sees.
    pub fn ephemeral(text: impl Into<String>) -> Self {
        Self { response_type: ResponseType::Ephemeral, text: text.into(), replace_original: None }
    }

    /// A reply the channel sees.
    pub fn in_channel(text: impl Into<String>) -> Self {
        Self { response_type: ResponseType::InChannel, text: text.into(), replace_original: None }
    }
}

/// The button value that answers `prompt` with `option`; see [`parse_button_value`].
pub fn button_value(prompt: &str, option: &str) -> String {
    format!("{prompt}:{option}")
}

/// `ESC-12:rollback` → (`ESC-12`, `rollback`). Prompt ids hold no `:`, so an option may.
pub fn parse_button_value(value: &str) -> Option<(&str, &str)> {
    let (prompt, option) = value.split_once(':')?;
    (!prompt.is_empty() && !option.is_empty()).then_some((prompt, option))
}

/// The incoming-webhook message for a notice: a text fallback (what notifications show), a
/// header, the context package as plain text, a context line, and one button per option while
/// the prompt is open.
pub fn notice_message(notice: &PromptNotice) -> Value {
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": clip(&format!("{}: {}", notice.prompt, notice.title), HEADER_MAX - 1), "emoji": false},
        }),
        json!({
            "type": "section",
            "text": {"type": "plain_text", "text": clip(&notice.text, SECTION_MAX - 1), "emoji": false},
        }),
        json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": context_line(notice)}],
        }),
    ];
    if !FINAL_STAGES.contains(&notice.stage.as_str()) {
        blocks.extend(action_blocks(notice));
    }
    json!({
        "text": escape(&format!("[{}] {} ({})", notice.prompt, notice.title, notice.stage)),
        "blocks": blocks,
    })
}

/// Stage, severity, deadline and run, and how to answer by typing.
fn context_line(notice: &PromptNotice) -> String {
    let mut parts = vec![format!("*{}*", escape(&notice.stage))];
    if let Some(severity) = notice.severity {
        let name = serde_json::to_value(severity).ok().and_then(|v| v.as_str().map(str::to_owned));
        parts.push(format!("severity {}", escape(&name.unwrap_or_default())));
    }
    if let Some(deadline) = notice.deadline {
        parts.push(format!("next deadline {deadline}"));
    }
    parts.push(format!("run `{}`", notice.run_id));
    parts.push(format!("or type `answer {} <option>`", escape(&notice.prompt)));
    parts.join(" · ")
}

/// Up to [`MAX_ACTION_BLOCKS`] actions blocks of buttons. An option whose value would be too
/// long for a button is left out: it can still be typed.
fn action_blocks(notice: &PromptNotice) -> Vec<Value> {
    let buttons: Vec<Value> = notice
        .options
        .iter()
        .enumerate()
        .filter_map(|(index, option)| {
            let value = button_value(&notice.prompt, &option.id);
            if value.len() > BUTTON_VALUE_MAX {
                tracing::warn!(prompt = %notice.prompt, "option id too long for a Slack button; left out");
                return None;
            }
            Some(json!({
                "type": "button",
                "text": {"type": "plain_text", "text": clip(&option.id, BUTTON_TEXT_MAX - 1), "emoji": false},
                "value": value,
                "action_id": format!("muster-option-{index}"),
            }))
        })
        .collect();
    buttons
        .chunks(BUTTONS_PER_BLOCK)
        .take(MAX_ACTION_BLOCKS)
        .enumerate()
        .map(|(chunk, elements)| {
            json!({
                "type": "actions",
                "block_id": clip(&format!("muster:{}:{chunk}", notice.prompt), 200),
                "elements": elements,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use muster_schemas::message::{NoticeOption, PromptKind};
    use uuid::Uuid;

    pub(crate) fn notice(stage: &str, options: &[&str]) -> PromptNotice {
        PromptNotice {
            run_id: Uuid::nil(),
            prompt: "ESC-12".into(),
            kind: PromptKind::Escalation,
            stage: stage.into(),
            severity: None,
            title: "disk <!channel> almost full".into(),
            text: "what happened".into(),
            options: options
                .iter()
                .map(|id| NoticeOption { id: (*id).into(), description: String::new(), effect: String::new() })
                .collect(),
            responders: vec![],
            channel: None,
            deadline: None,
        }
    }

    #[test]
    fn escaping_neutralises_mentions_links_and_entities() {
        assert_eq!(escape("<!channel> & <https://x|y>"), "&lt;!channel&gt; &amp; &lt;https://x|y&gt;");
        assert_eq!(mention("U2CERLKJA"), "<@U2CERLKJA>");
        assert_eq!(mention("<!here>"), "&lt;!here&gt;");
        assert_eq!(mention(""), "");
    }

    #[test]
    fn a_notice_has_one_button_per_option_carrying_prompt_and_option() {
        let message = notice_message(&notice("raised", &["rollback", "continue"]));
        let blocks = message["blocks"].as_array().unwrap();
        let actions: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "actions").collect();
        assert_eq!(actions.len(), 1);
        let values: Vec<&str> =
            actions[0]["elements"].as_array().unwrap().iter().map(|b| b["value"].as_str().unwrap()).collect();
        assert_eq!(values, ["ESC-12:rollback", "ESC-12:continue"]);
        assert_eq!(message["text"], "[ESC-12] disk &lt;!channel&gt; almost full (raised)");
        assert_eq!(blocks[0]["text"]["type"], "plain_text", "titles are never mrkdwn");
    }

    #[test]
    fn a_closed_prompt_has_no_buttons_and_many_options_are_chunked() {
        let closed = notice_message(&notice("answered", &["rollback"]));
        assert!(closed["blocks"].as_array().unwrap().iter().all(|b| b["type"] != "actions"));
        let ids: Vec<String> = (0..30).map(|i| format!("o{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let many = notice_message(&notice("raised", &ids));
        let sizes: Vec<usize> = many["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "actions")
            .map(|b| b["elements"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [25, 5]);
    }

    #[test]
    fn button_values_round_trip_and_options_may_hold_colons() {
        assert_eq!(parse_button_value(&button_value("ESC-1", "a:b")), Some(("ESC-1", "a:b")));
        assert_eq!(parse_button_value("ESC-1"), None);
        assert_eq!(parse_button_value(":x"), None);
        assert_eq!(parse_button_value("ESC-1:"), None);
    }
}
