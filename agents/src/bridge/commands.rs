//! What people type in chat, read as data.
//!
//! A message becomes a [`Command`] or a [`ParseError`] whose text is a sentence saying what was
//! expected; nothing typed ever becomes a command line, a template or a subject. The grammar:
//!
//! ```text
//! [!muster | @bot:server | bot name:]  help
//!                                      show    ESC-12
//!                                      ack     ESC-12                      [because <text>]
//!                                      answer  ESC-12|D-5  <option>         [because <text>]
//!                                      approve A-4  [<binding>]             [because <text>]
//!                                      reject  A-4|ESC-12  <reason>
//!                                      form    F-3  field=value field2="two words" ...
//!                                      done    M-6                          [because <text>]
//! ```
//!
//! Verbs and prompt ids are case-insensitive; `—`, `–` or `--` may stand for `because`.
//! A message addressed to the bot (`!muster`, its user id, or its name followed by `:`) always
//! gets an answer, an error if nothing else. An unaddressed message is a command only when it
//! starts with a verb and a prompt id, so people talking in the room are not lectured.

use muster_schemas::answer::AnswerAction;
use muster_schemas::message::PromptKind;
use std::collections::BTreeMap;
use std::fmt;

/// Longest message read as a command; chat allows far more, an answer never needs it.
pub const MAX_COMMAND_BYTES: usize = 4096;
/// Longest free-text note or reason kept with an answer.
pub const MAX_NOTE_CHARS: usize = 1000;
/// Longest option id, binding, field name.
const MAX_WORD_CHARS: usize = 64;

/// The short id people type for a prompt: a kind prefix and the prompt's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptId {
    /// Which kind of question the prefix says it is.
    pub kind: PromptKind,
    /// The number the orchestrator handed out (unique across kinds).
    pub number: u64,
}

impl PromptId {
    /// Reads `ESC-12`, `esc-12`, `F-3`, ...; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (prefix, number) = text.split_once('-')?;
        let kind = KINDS.iter().copied().find(|kind| kind.prefix().eq_ignore_ascii_case(prefix))?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self { kind, number: number.parse().ok()? })
    }

    /// The key of the prompt in the prompts bucket (`n.<number>`).
    pub fn registry_key(&self) -> String {
        format!("n.{}", self.number)
    }
}

impl fmt::Display for PromptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.kind.prefix(), self.number)
    }
}

const KINDS: [PromptKind; 5] =
    [PromptKind::Escalation, PromptKind::Form, PromptKind::Approval, PromptKind::Decision, PromptKind::Manual];

/// What a person asked the bridge to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// List the commands.
    Help,
    /// Post the latest notice of a prompt again.
    Show(PromptId),
    /// Answer a prompt.
    Answer {
        /// The prompt.
        prompt: PromptId,
        /// What the person does.
        action: AnswerAction,
        /// Free text kept with the answer.
        note: Option<String>,
    },
}

/// Why a message addressed to the bridge is not a command, as a sentence for the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    message: String,
    prompt: Option<PromptId>,
}

impl ParseError {
    fn new(text: impl Into<String>) -> Self {
        Self { message: text.into(), prompt: None }
    }

    /// The prompt the message was about, when it got that far: the reply goes to its thread.
    pub fn prompt(&self) -> Option<PromptId> {
        self.prompt
    }
}

/// The commands that answer a kind of prompt, as people type them.
pub fn usage(prompt: PromptId) -> Vec<String> {
    match prompt.kind {
        PromptKind::Escalation => vec![
            format!("answer {prompt} <option> [because <why>]"),
            format!("ack {prompt}"),
            format!("reject {prompt} <reason>"),
        ],
        PromptKind::Decision => vec![format!("answer {prompt} <option> [because <why>]")],
        PromptKind::Form => vec![format!("form {prompt} field=value field2=\"two words\"")],
        PromptKind::Approval => vec![format!("approve {prompt} [<binding>]"), format!("reject {prompt} <reason>")],
        PromptKind::Manual => vec![format!("done {prompt} [because <note>]")],
    }
}

/// Every command, for `help`.
pub const HELP: &str = "Commands (prompt ids like ESC-12, F-3, A-4, D-5, M-6; case does not matter):
  help                                   this list
  show ESC-12                            post the prompt's latest notice again
  ack ESC-12                             I have seen the escalation and I am on it
  answer ESC-12 <option> [because <why>] pick an option of an escalation or decision
  approve A-4 [<binding>]                approve (the binding is the hash shown with the plan)
  reject A-4 <reason>                    reject an approval or an escalation's request
  form F-3 field=value f2=\"two words\"    fill form fields (several messages are fine)
  done M-6 [because <note>]              the manual step's checklist is done
Start a message with !muster or mention me when it is not obviously a command.";

/// Reads messages for one bot account.
#[derive(Debug, Clone)]
pub struct Parser {
    /// Ways people address the bot, compared ignoring ASCII case: its user id (first), its
    /// localpart, its display name.
    names: Vec<String>,
}

impl Parser {
    /// A parser for the bot `user_id` (`@muster:example.org`), also answering to its display name.
    pub fn new(user_id: &str, display_name: Option<&str>) -> Self {
        let mut names = vec![user_id.to_owned()];
        if let Some(localpart) = user_id.strip_prefix('@').and_then(|rest| rest.split(':').next()) {
            names.push(localpart.to_owned());
        }
        if let Some(name) = display_name.map(str::trim).filter(|n| !n.is_empty()) {
            names.push(name.to_owned());
        }
        Self { names }
    }

    /// `Ok(None)` when the message is not for the bridge; `mentioned` says the chat message
    /// mentions the bot explicitly (Matrix `m.mentions`), which makes it addressed.
    pub fn parse(&self, text: &str, mentioned: bool) -> Result<Option<Command>, ParseError> {
        let text = strip_reply_fallback(text).trim();
        let (addressed, rest) = match self.strip_address(text) {
            Some(rest) => (true, rest),
            None => (mentioned, text),
        };
        if rest.len() > MAX_COMMAND_BYTES {
            return if addressed {
                Err(ParseError::new(format!(
                    "That message is too long to be a command (over {MAX_COMMAND_BYTES} bytes); keep the reason short."
                )))
            } else {
                Ok(None)
            };
        }
        let mut words = Words::new(rest);
        let Some(verb) = words.next_word() else {
            return if addressed { Err(ParseError::new(format!("Yes? {}", short_help()))) } else { Ok(None) };
        };
        let verb = verb.to_lowercase();
        if verb == "help" || verb == "?" {
            return if addressed || words.rest().is_empty() { Ok(Some(Command::Help)) } else { Ok(None) };
        }
        let Some(verb) = Verb::parse(&verb) else {
            return if addressed {
                Err(ParseError::new(format!("I don't know `{}`. {}", clip(&verb), short_help())))
            } else {
                Ok(None)
            };
        };
        // Unaddressed chatter that happens to start with a verb ("show me the logs") is not
        // for us unless a prompt id follows.
        let prompt = match words.next_word() {
            None if addressed => return Err(ParseError::new(verb.example())),
            None => return Ok(None),
            Some(word) => match PromptId::parse(word) {
                Some(prompt) => prompt,
                None if addressed => {
                    return Err(ParseError::new(format!(
                        "`{}` is not a prompt id: they look like ESC-12, F-3, A-4, D-5 or M-6. {}",
                        clip(word),
                        verb.example()
                    )));
                }
                None => return Ok(None),
            },
        };
        let about = |mut err: ParseError| {
            err.prompt = Some(prompt);
            err
        };
        verb.check_kind(prompt).map_err(about)?;
        verb.finish(prompt, &mut words).map(Some).map_err(about)
    }

    /// The text after the addressing prefix, if the message starts with one.
    fn strip_address<'a>(&self, text: &'a str) -> Option<&'a str> {
        if let Some(rest) = strip_prefix_ignore_case(text, "!muster")
            && (rest.is_empty() || rest.starts_with(char::is_whitespace) || rest.starts_with([':', ',']))
        {
            return Some(rest.trim_start_matches([':', ',']).trim_start());
        }
        for (index, name) in self.names.iter().enumerate() {
            let Some(rest) = strip_prefix_ignore_case(text, name) else { continue };
            // The full user id may be followed by a space; a bare name needs `:` or `,` so that
            // "muster is down" is not a command.
            if rest.starts_with([':', ',']) {
                return Some(rest[1..].trim_start());
            }
            if index == 0 && (rest.is_empty() || rest.starts_with(char::is_whitespace)) {
                return Some(rest.trim_start());
            }
        }
        None
    }
}

fn short_help() -> &'static str {
    "Try `help` for the commands."
}

/// `text` without `prefix` when it starts with it, ignoring ASCII case.
fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// Removes the quoted `> ...` lines some clients put before a reply.
fn strip_reply_fallback(text: &str) -> &str {
    if !text.starts_with('>') {
        return text;
    }
    let mut rest = text;
    while rest.starts_with('>') {
        rest = rest.split_once('\n').map_or("", |(_, after)| after);
    }
    rest
}

/// At most 40 characters of something a person typed, for quoting it back.
fn clip(text: &str) -> String {
    let mut clipped: String = text.chars().take(40).filter(|c| !c.is_control() && *c != '`').collect();
    if text.chars().count() > 40 {
        clipped.push('…');
    }
    clipped
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Show,
    Ack,
    Answer,
    Approve,
    Reject,
    Form,
    Done,
}

impl Verb {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "show" => Verb::Show,
            "ack" | "acknowledge" => Verb::Ack,
            "answer" | "choose" => Verb::Answer,
            "approve" => Verb::Approve,
            "reject" => Verb::Reject,
            "form" | "fill" => Verb::Form,
            "done" | "confirm" => Verb::Done,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Verb::Show => "show",
            Verb::Ack => "ack",
            Verb::Answer => "answer",
            Verb::Approve => "approve",
            Verb::Reject => "reject",
            Verb::Form => "form",
            Verb::Done => "done",
        }
    }

    fn example(self) -> String {
        let text = match self {
            Verb::Show => "`show` takes a prompt id, like `show ESC-12`.",
            Verb::Ack => "`ack` takes an escalation id, like `ack ESC-12`.",
            Verb::Answer => {
                "`answer` takes a prompt id and an option, like `answer ESC-12 rollback because the disk is full`."
            }
            Verb::Approve => {
                "`approve` takes an approval id and optionally the binding shown with it, like `approve A-4 9f2c1e`."
            }
            Verb::Reject => "`reject` takes a prompt id and a reason, like `reject A-4 the plan touches prod`.",
            Verb::Form => "`form` takes a form id and fields, like `form F-3 host=db-1 reason=\"disk full\"`.",
            Verb::Done => "`done` takes a manual step's id, like `done M-6`.",
        };
        text.to_owned()
    }

    /// The kinds of prompt a verb can answer, as the contract defines the actions.
    fn kinds(self) -> &'static [PromptKind] {
        match self {
            Verb::Show => &KINDS,
            Verb::Ack => &[PromptKind::Escalation],
            Verb::Answer => &[PromptKind::Escalation, PromptKind::Decision],
            Verb::Approve => &[PromptKind::Approval],
            Verb::Reject => &[PromptKind::Approval, PromptKind::Escalation],
            Verb::Form => &[PromptKind::Form],
            Verb::Done => &[PromptKind::Manual],
        }
    }

    fn check_kind(self, prompt: PromptId) -> Result<(), ParseError> {
        if self.kinds().contains(&prompt.kind) {
            return Ok(());
        }
        let what = match prompt.kind {
            PromptKind::Escalation => "an escalation",
            PromptKind::Form => "a form",
            PromptKind::Approval => "an approval",
            PromptKind::Decision => "a decision",
            PromptKind::Manual => "a manual step",
        };
        let ways = usage(prompt).iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(" or ");
        Err(ParseError::new(format!("`{}` does not answer {prompt}, which is {what}: use {ways}.", self.name())))
    }

    /// Reads what follows the prompt id.
    fn finish(self, prompt: PromptId, words: &mut Words<'_>) -> Result<Command, ParseError> {
        let answer = |action, note| Ok(Command::Answer { prompt, action, note });
        match self {
            Verb::Show => {
                if !words.rest().is_empty() {
                    return Err(ParseError::new(format!(
                        "`show` takes only a prompt id, like `show {prompt}`; nothing after it."
                    )));
                }
                Ok(Command::Show(prompt))
            }
            Verb::Ack => answer(AnswerAction::Acknowledge, self.note(prompt, words)?),
            Verb::Done => answer(AnswerAction::Confirm, self.note(prompt, words)?),
            Verb::Answer => {
                let Some(option) = words.next_word().filter(|w| !is_because(w)) else {
                    return Err(ParseError::new(format!(
                        "Which option? Write `answer {prompt} <option>`; `show {prompt}` lists the options."
                    )));
                };
                let option = word_value(option, "An option")?;
                answer(AnswerAction::Choose { option }, self.note(prompt, words)?)
            }
            Verb::Approve => {
                let mut binding = None;
                if let Some(word) = words.peek_word().filter(|w| !is_because(w)) {
                    binding = Some(word_value(word, "A binding")?);
                    words.next_word();
                }
                answer(AnswerAction::Approve { binding }, self.note(prompt, words)?)
            }
            Verb::Reject => {
                let mut reason = words.rest();
                if let Some(word) = words.peek_word().filter(|w| is_because(w)) {
                    reason = reason[word.len()..].trim_start();
                }
                if reason.is_empty() {
                    return Err(ParseError::new(format!(
                        "Say why: `reject {prompt} <reason>`; the reason is kept with the run."
                    )));
                }
                answer(AnswerAction::Reject { reason: note_value(reason)? }, None)
            }
            Verb::Form => answer(AnswerAction::Fill { fields: fields(prompt, words.rest())? }, None),
        }
    }

    /// An optional `because <text>` (or `— <text>`) at the end.
    fn note(self, prompt: PromptId, words: &mut Words<'_>) -> Result<Option<String>, ParseError> {
        let Some(word) = words.next_word() else { return Ok(None) };
        if !is_because(word) {
            return Err(ParseError::new(format!(
                "I read `{} {prompt}` and then `{}`: put free text after `because`, like `{} {prompt}{} because <why>`.",
                self.name(),
                clip(word),
                self.name(),
                if self == Verb::Answer { " <option>" } else { "" },
            )));
        }
        let text = words.rest();
        if text.is_empty() {
            return Err(ParseError::new(format!("Say why after `{}`, or leave it out.", clip(word))));
        }
        note_value(text).map(Some)
    }
}

fn is_because(word: &str) -> bool {
    word.eq_ignore_ascii_case("because") || matches!(word, "—" | "–" | "--")
}

fn word_value(word: &str, what: &str) -> Result<String, ParseError> {
    let valid = word.chars().count() <= MAX_WORD_CHARS
        && word.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'));
    if valid {
        Ok(word.to_owned())
    } else {
        Err(ParseError::new(format!(
            "{what} is one word of letters, digits, `-`, `_`, `.`, `:` or `/` (at most {MAX_WORD_CHARS}); `{}` is not.",
            clip(word)
        )))
    }
}

fn note_value(text: &str) -> Result<String, ParseError> {
    if text.chars().count() > MAX_NOTE_CHARS {
        return Err(ParseError::new(format!("Keep the reason under {MAX_NOTE_CHARS} characters.")));
    }
    Ok(text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_owned())
}

/// `field=value field2="two words"` into a map; every field at most once.
fn fields(prompt: PromptId, text: &str) -> Result<BTreeMap<String, String>, ParseError> {
    let example = format!("`form {prompt} field=value field2=\"two words\"`");
    let mut fields = BTreeMap::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let Some(eq) = rest.find(|c: char| c == '=' || c.is_whitespace()).filter(|&i| rest[i..].starts_with('='))
        else {
            let word = rest.split_whitespace().next().unwrap_or(rest);
            return Err(ParseError::new(format!("`{}` is not field=value; write {example}.", clip(word))));
        };
        let name = &rest[..eq];
        if name.is_empty()
            || name.chars().count() > MAX_WORD_CHARS
            || !name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(ParseError::new(format!(
                "`{}` is not a field name (letters, digits, `_`, `-`, `.`); write {example}.",
                clip(name)
            )));
        }
        let (value, after) = field_value(&rest[eq + 1..])
            .ok_or_else(|| ParseError::new(format!("The quotes after `{}=` are not closed.", clip(name))))?;
        if fields.insert(name.to_owned(), note_value(&value)?).is_some() {
            return Err(ParseError::new(format!("`{}` is given twice; give each field once.", clip(name))));
        }
        rest = after.trim_start();
    }
    if fields.is_empty() {
        return Err(ParseError::new(format!("Which fields? Write {example}.")));
    }
    Ok(fields)
}

/// A value up to the next whitespace, or a quoted one (`"..."` or `“...”`, `\"` and `\\`
/// escaped); `None` when a quote is not closed.
fn field_value(text: &str) -> Option<(String, &str)> {
    let mut chars = text.char_indices();
    match chars.next() {
        Some((_, '"' | '“')) => {
            let mut value = String::new();
            let mut escaped = false;
            for (index, c) in chars {
                match c {
                    _ if escaped => {
                        value.push(c);
                        escaped = false;
                    }
                    '\\' => escaped = true,
                    '"' | '”' => return Some((value, &text[index + c.len_utf8()..])),
                    _ => value.push(c),
                }
            }
            None
        }
        _ => {
            let end = text.find(char::is_whitespace).unwrap_or(text.len());
            Some((text[..end].to_owned(), &text[end..]))
        }
    }
}

/// Whitespace-separated words that keep the untouched rest available (for free text).
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Words<'a> {
    fn new(text: &'a str) -> Self {
        Self { rest: text.trim_start() }
    }

    fn peek_word(&self) -> Option<&'a str> {
        let end = self.rest.find(char::is_whitespace).unwrap_or(self.rest.len());
        (end > 0).then(|| &self.rest[..end])
    }

    fn next_word(&mut self) -> Option<&'a str> {
        let word = self.peek_word()?;
        self.rest = self.rest[word.len()..].trim_start();
        Some(word)
    }

    fn rest(&self) -> &'a str {
        self.rest.trim_end()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn parser() -> Parser {
        Parser::new("@muster:localhost", Some("Muster Bot"))
    }

    fn parse(text: &str) -> Result<Option<Command>, ParseError> {
        parser().parse(text, false)
    }

    fn command(text: &str) -> Command {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}")).unwrap_or_else(|| panic!("{text:?}: not a command"))
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Err(e) => e.to_string(),
            other => panic!("{text:?} parsed as {other:?}"),
        }
    }

    fn esc(number: u64) -> PromptId {
        PromptId { kind: PromptKind::Escalation, number }
    }

    #[test]
    fn prompt_ids_are_case_insensitive_and_strict() {
        assert_eq!(PromptId::parse("esc-12"), Some(esc(12)));
        assert_eq!(PromptId::parse("ESC-12").unwrap().to_string(), "ESC-12");
        assert_eq!(PromptId::parse("f-3").unwrap().to_string(), "F-3");
        assert_eq!(PromptId::parse("m-6").unwrap().registry_key(), "n.6");
        for bad in ["ESC12", "ESC-", "ESC-x", "X-1", "ESC-+1", "ESC-1-2", "", "-1", "ESC-99999999999999999999"] {
            assert_eq!(PromptId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_verb_parses() {
        assert_eq!(command("help"), Command::Help);
        assert_eq!(command("SHOW esc-12"), Command::Show(esc(12)));
        assert_eq!(
            command("ack ESC-12"),
            Command::Answer { prompt: esc(12), action: AnswerAction::Acknowledge, note: None }
        );
        assert_eq!(
            command("answer ESC-1 rollback because disk full"),
            Command::Answer {
                prompt: esc(1),
                action: AnswerAction::Choose { option: "rollback".into() },
                note: Some("disk full".into())
            }
        );
        assert_eq!(
            command("Answer esc-1 retry — flaky network"),
            Command::Answer {
                prompt: esc(1),
                action: AnswerAction::Choose { option: "retry".into() },
                note: Some("flaky network".into())
            }
        );
        let a4 = PromptId { kind: PromptKind::Approval, number: 4 };
        assert_eq!(
            command("approve A-4"),
            Command::Answer { prompt: a4, action: AnswerAction::Approve { binding: None }, note: None }
        );
        assert_eq!(
            command("approve a-4 9f2c1e because looks right"),
            Command::Answer {
                prompt: a4,
                action: AnswerAction::Approve { binding: Some("9f2c1e".into()) },
                note: Some("looks right".into())
            }
        );
        assert_eq!(
            command("reject A-4 because the plan touches prod"),
            Command::Answer {
                prompt: a4,
                action: AnswerAction::Reject { reason: "the plan touches prod".into() },
                note: None
            }
        );
        let f3 = PromptId { kind: PromptKind::Form, number: 3 };
        let Command::Answer { prompt, action: AnswerAction::Fill { fields }, .. } =
            command(r#"form F-3 host=db-1 reason="disk full" quote="say \"hi\"" curly=“a b”"#)
        else {
            panic!("not a fill")
        };
        assert_eq!(prompt, f3);
        assert_eq!(fields["host"], "db-1");
        assert_eq!(fields["reason"], "disk full");
        assert_eq!(fields["quote"], "say \"hi\"");
        assert_eq!(fields["curly"], "a b");
        assert_eq!(
            command("DONE m-6"),
            Command::Answer {
                prompt: PromptId { kind: PromptKind::Manual, number: 6 },
                action: AnswerAction::Confirm,
                note: None
            }
        );
    }

    #[test]
    fn addressing_prefixes_are_stripped() {
        let p = parser();
        for text in [
            "!muster show ESC-2",
            "!MUSTER: show ESC-2",
            "@muster:localhost show ESC-2",
            "@muster:localhost: show ESC-2",
            "muster: show ESC-2",
            "Muster Bot: show ESC-2",
            "> <@alice:localhost> earlier\n\nshow ESC-2",
        ] {
            assert_eq!(p.parse(text, false).unwrap(), Some(Command::Show(esc(2))), "{text}");
        }
    }

    #[test]
    fn chatter_is_not_for_us_but_addressed_nonsense_is_answered() {
        for text in ["", "hello all", "show me the logs", "help me please", "answer is 42", "muster is down"] {
            assert_eq!(parse(text).unwrap(), None, "{text}");
        }
        assert!(error("!muster").contains("help"));
        assert!(error("!muster dance").contains("I don't know `dance`"));
        assert!(parser().parse("dance", true).unwrap_err().to_string().contains("I don't know"));
        assert_eq!(command("!muster help me please"), Command::Help);
    }

    #[test]
    fn errors_say_what_was_expected() {
        assert!(error("!muster answer").contains("like `answer ESC-12 rollback"));
        assert!(error("!muster show ESC12").contains("is not a prompt id"));
        assert!(error("answer ESC-1").contains("Which option?"));
        assert_eq!(parse("answer ESC-1").unwrap_err().prompt(), PromptId::parse("ESC-1"));
        assert_eq!(parse("!muster answer x").unwrap_err().prompt(), None);
        assert!(error("answer ESC-1 roll back").contains("after `because`"));
        assert!(error("answer ESC-1 rollback because").contains("Say why"));
        assert!(error("answer ESC-1 <rollback>").contains("one word"));
        assert!(error("approve ESC-1").contains("`approve` does not answer ESC-1, which is an escalation"));
        assert!(error("done F-3").contains("`form F-3 field=value"));
        assert!(error("reject A-4").contains("Say why"));
        assert!(error("form F-3").contains("Which fields?"));
        assert!(error("form F-3 host").contains("is not field=value"));
        assert!(error("form F-3 a=1 a=2").contains("given twice"));
        assert!(error("form F-3 a=\"open").contains("not closed"));
        assert!(error("form F-3 =x").contains("not a field name"));
        assert!(error("show ESC-1 now").contains("nothing after it"));
        assert!(parser().parse(&format!("!muster reject A-1 {}", "x".repeat(5000)), false).is_err());
        assert!(error(&format!("reject A-1 {}", "x".repeat(2000))).contains("under 1000"));
    }

    #[test]
    fn every_error_is_a_sentence() {
        for text in ["!muster", "!muster x", "answer ESC-1", "approve D-1", "form F-1 x", "reject ESC-2"] {
            let message = error(text);
            assert!(message.ends_with('.') || message.ends_with("commands."), "{text}: {message}");
            assert!(message.chars().next().is_some_and(|c| c.is_uppercase() || c == '`'), "{message}");
        }
    }

    /// Random text never panics, and whatever parses carries only bounded data.
    #[test]
    fn random_text_never_panics() {
        let alphabet: Vec<char> = "aAeEsScC-=\"“”\\ \n\t>—:!@0123456789.,?éß😀\u{0}\u{202e}".chars().collect();
        let words = [
            "!muster ",
            "help",
            "show ",
            "ack ",
            "answer ",
            "approve ",
            "reject ",
            "form ",
            "done ",
            "ESC-",
            "F-",
            "A-",
            "D-",
            "M-",
            "because ",
            "x=",
            "\"",
            "@muster:localhost ",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let p = parser();
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(next() % 12) {
                if next() % 3 == 0 {
                    text.push_str(words[(next() % words.len() as u64) as usize]);
                } else {
                    for _ in 0..(next() % 6) {
                        text.push(alphabet[(next() % alphabet.len() as u64) as usize]);
                    }
                }
            }
            let mentioned = next() % 2 == 0;
            match p.parse(&text, mentioned) {
                Ok(Some(Command::Answer { note, action, .. })) => {
                    assert!(note.is_none_or(|n| n.chars().count() <= MAX_NOTE_CHARS));
                    if let AnswerAction::Choose { option } = action {
                        assert!(!option.is_empty() && option.chars().count() <= MAX_WORD_CHARS);
                    }
                }
                Ok(_) => {}
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
}
