//! The words after the slash command (`/muster answer ESC-12 rollback because ...`).
//!
//! Deliberately tiny and private: the bridge's shared chat command parser will replace it.
//! The text only ever selects one of these commands and fills its fields as data.

/// What a person asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    /// `answer <prompt> <option> [note...]`
    Answer {
        /// As typed; the sink normalises it.
        prompt: String,
        /// The option id.
        option: String,
        /// Everything after the option, kept with the answer.
        note: Option<String>,
    },
    /// `ack <prompt> [note...]`
    Ack {
        /// As typed.
        prompt: String,
        /// Everything after the prompt.
        note: Option<String>,
    },
    /// `show <prompt>`
    Show {
        /// As typed.
        prompt: String,
    },
    /// `help`, or nothing at all.
    Help,
}

/// What `help` and every usage error show.
pub(super) const USAGE: &str = "Usage:\n\
    • `answer ESC-12 rollback because the plan drifted` – choose an option (the note is optional)\n\
    • `ack ESC-12` – say you have seen it and are on it\n\
    • `show ESC-12` – what the prompt is about\n\
    • `help` – this text";

/// Why the text is not a command; the message says how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(super) struct ParseError(pub String);

/// Parses the slash command's `text` field.
pub(super) fn parse(text: &str) -> Result<Command, ParseError> {
    let text = text.trim();
    let (verb, rest) = split_word(text);
    match verb.to_ascii_lowercase().as_str() {
        "" | "help" => Ok(Command::Help),
        "answer" | "choose" => {
            let (prompt, rest) = split_word(rest);
            let (option, note) = split_word(rest);
            if prompt.is_empty() || option.is_empty() {
                return Err(usage("`answer` needs a prompt and an option, like `answer ESC-12 rollback`"));
            }
            Ok(Command::Answer { prompt: prompt.to_owned(), option: option.to_owned(), note: note_of(note) })
        }
        "ack" | "acknowledge" => {
            let (prompt, note) = split_word(rest);
            if prompt.is_empty() {
                return Err(usage("`ack` needs a prompt, like `ack ESC-12`"));
            }
            Ok(Command::Ack { prompt: prompt.to_owned(), note: note_of(note) })
        }
        "show" => {
            let (prompt, extra) = split_word(rest);
            if prompt.is_empty() || !extra.is_empty() {
                return Err(usage("`show` takes one prompt, like `show ESC-12`"));
            }
            Ok(Command::Show { prompt: prompt.to_owned() })
        }
        _ => Err(usage("muster does not know that command")),
    }
}

fn usage(problem: &str) -> ParseError {
    ParseError(format!("{problem}.\n{USAGE}"))
}

/// The first whitespace-separated word and the trimmed rest.
fn split_word(text: &str) -> (&str, &str) {
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}

fn note_of(rest: &str) -> Option<String> {
    (!rest.is_empty()).then(|| rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_takes_a_prompt_an_option_and_the_rest_as_note() {
        assert_eq!(
            parse("answer ESC-12 rollback because  the plan drifted ").unwrap(),
            Command::Answer {
                prompt: "ESC-12".into(),
                option: "rollback".into(),
                note: Some("because  the plan drifted".into())
            }
        );
        assert_eq!(
            parse("  ANSWER\tesc-3 continue").unwrap(),
            Command::Answer { prompt: "esc-3".into(), option: "continue".into(), note: None }
        );
    }

    #[test]
    fn ack_show_and_help() {
        assert_eq!(parse("ack ESC-12").unwrap(), Command::Ack { prompt: "ESC-12".into(), note: None });
        assert_eq!(
            parse("ack ESC-12 on it").unwrap(),
            Command::Ack { prompt: "ESC-12".into(), note: Some("on it".into()) }
        );
        assert_eq!(parse("show ESC-12").unwrap(), Command::Show { prompt: "ESC-12".into() });
        assert_eq!(parse("help").unwrap(), Command::Help);
        assert_eq!(parse("   ").unwrap(), Command::Help);
    }

    #[test]
    fn incomplete_or_unknown_commands_say_how_to_write_them() {
        for (text, problem) in [
            ("answer", "`answer` needs a prompt and an option"),
            ("answer ESC-12", "`answer` needs a prompt and an option"),
            ("ack", "`ack` needs a prompt"),
            ("show", "`show` takes one prompt"),
            ("show ESC-12 now", "`show` takes one prompt"),
            ("rm -rf /", "muster does not know that command"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.0.starts_with(problem), "{text:?}: {err}");
            assert!(err.0.contains(USAGE), "{text:?}");
        }
    }
}
