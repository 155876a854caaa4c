//! Why an answer is not acted on.
//!
//! The text goes back to whoever sent the answer (a CLI user, a chat bridge) and into the
//! orchestrator's log, so it says what to do next; [`Refusal::label`] is the stable name
//! counters and dashboards use.

use super::verify::{CLOCK_SKEW, MAX_VALIDITY};
use jiff::Timestamp;
use muster_schemas::answer::Channel;

/// An answer refused, and why.
///
/// Strings inside come from the sender, so they are clipped and escaped (see [`clip()`]) before
/// they are stored here: a refusal can be logged or echoed without letting the sender write
/// arbitrary text into it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The envelope names a principal the responder map does not list.
    #[error(
        "principal `{principal}` is not in the orchestrator's responder map; add it under [responders.principals.{principal}] with the public key `muster keygen` printed"
    )]
    UnknownPrincipal {
        /// The principal named by the envelope.
        principal: String,
    },
    /// The signature does not verify with the named principal's key.
    #[error(
        "the signature does not match the answer and the public key of principal `{principal}`; sign it again with that principal's own key"
    )]
    BadSignature {
        /// The principal named by the envelope.
        principal: String,
    },
    /// The signed bytes are not a well-formed answer.
    #[error("the signed answer is malformed: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The answer expired before it arrived.
    #[error("the answer expired at {expires_at} (orchestrator time {now}); answer again")]
    Expired {
        /// When it stopped being valid.
        expires_at: Timestamp,
        /// The orchestrator's clock.
        now: Timestamp,
    },
    /// The answer claims to be signed further in the future than clock skew explains.
    #[error(
        "the answer was issued at {issued_at}, after the orchestrator's time {now} plus {skew}s of allowed clock skew; check the signer's clock",
        skew = CLOCK_SKEW.as_secs()
    )]
    NotYetValid {
        /// When it claims to have been signed.
        issued_at: Timestamp,
        /// The orchestrator's clock.
        now: Timestamp,
    },
    /// The answer would stay valid longer than any answer may, widening the replay window.
    #[error(
        "the answer is valid for {seconds}s, more than the {max}s an answer may be; sign it with a shorter expiry",
        max = MAX_VALIDITY.as_secs()
    )]
    ValidityTooLong {
        /// `expires_at - issued_at`, in seconds.
        seconds: i64,
    },
    /// The principal is not trusted to vouch for identities on this channel.
    #[error(
        "principal `{principal}` may not speak for {channel} identities; list \"{channel}\" in responders.principals.{principal}.speaks_for if it should",
        channel = channel.as_str()
    )]
    ChannelNotAllowed {
        /// The signing principal.
        principal: String,
        /// The channel the answer claims.
        channel: Channel,
    },
    /// A CLI principal claimed someone else's CLI identity; a CLI key only speaks for its owner.
    #[error(
        "principal `{principal}` signed for the CLI user `{claimed}`; on the CLI a key speaks only for its own name, so answer as `{principal}`"
    )]
    NotSelf {
        /// The signing principal.
        principal: String,
        /// The CLI identity it claimed.
        claimed: String,
    },
    /// The identity is no person in the responder map.
    #[error(
        "{channel} identity `{id}` is nobody in the responder map; add it to the person's `{channel}` list under [responders.people.NAME]",
        channel = channel.as_str()
    )]
    UnknownIdentity {
        /// The channel.
        channel: Channel,
        /// The identity id.
        id: String,
    },
    /// The nonce was already used: this exact answer was received before.
    #[error(
        "this answer was already received (its nonce from principal `{principal}` is used); answer again to send a new one"
    )]
    Replayed {
        /// The signing principal.
        principal: String,
    },
    /// The person is genuine but not among those the prompt accepts answers from.
    #[error("{person} may not answer {prompt}: it is for {responders}")]
    NotAResponder {
        /// The person.
        person: String,
        /// What they answered.
        prompt: String,
        /// Who may, in words (`group infra-oncall, user alice`).
        responders: String,
    },
}

impl Refusal {
    /// A stable snake_case name for counters and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::UnknownPrincipal { .. } => "unknown_principal",
            Refusal::BadSignature { .. } => "bad_signature",
            Refusal::Malformed { .. } => "malformed",
            Refusal::Expired { .. } => "expired",
            Refusal::NotYetValid { .. } => "not_yet_valid",
            Refusal::ValidityTooLong { .. } => "validity_too_long",
            // Claiming another CLI user is speaking for an identity the key may not speak for.
            Refusal::ChannelNotAllowed { .. } | Refusal::NotSelf { .. } => "channel_not_allowed",
            Refusal::UnknownIdentity { .. } => "unknown_identity",
            Refusal::Replayed { .. } => "replayed",
            Refusal::NotAResponder { .. } => "not_a_responder",
        }
    }

    /// Every label, for registering counters before the first refusal.
    pub const LABELS: [&'static str; 10] = [
        "unknown_principal",
        "bad_signature",
        "malformed",
        "expired",
        "not_yet_valid",
        "validity_too_long",
        "channel_not_allowed",
        "unknown_identity",
        "replayed",
        "not_a_responder",
    ];
}

/// Sender-supplied text made safe to keep in a refusal: at most `max` characters, control and
/// quote characters escaped, so a hostile principal name cannot flood or forge log lines.
pub fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).flat_map(char::escape_debug).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_is_listed_and_long_sender_text_is_clipped() {
        let now = Timestamp::UNIX_EPOCH;
        let all = [
            Refusal::UnknownPrincipal { principal: "p".into() },
            Refusal::BadSignature { principal: "p".into() },
            Refusal::Malformed { reason: "r".into() },
            Refusal::Expired { expires_at: now, now },
            Refusal::NotYetValid { issued_at: now, now },
            Refusal::ValidityTooLong { seconds: 901 },
            Refusal::ChannelNotAllowed { principal: "p".into(), channel: Channel::Matrix },
            Refusal::NotSelf { principal: "p".into(), claimed: "q".into() },
            Refusal::UnknownIdentity { channel: Channel::Slack, id: "U1".into() },
            Refusal::Replayed { principal: "p".into() },
            Refusal::NotAResponder {
                person: "alice".into(),
                prompt: "ESC-1".into(),
                responders: "group oncall".into(),
            },
        ];
        for refusal in &all {
            assert!(Refusal::LABELS.contains(&refusal.label()), "{refusal:?}");
            assert!(!refusal.to_string().is_empty());
        }
        assert!(all[4].to_string().contains("plus 30s of allowed clock skew"), "{}", all[4]);
        assert!(all[5].to_string().contains("901s, more than the 900s"), "{}", all[5]);
        assert_eq!(clip("a\nb", 64), "a\\nb");
        let long = "x".repeat(1000);
        assert_eq!(clip(&long, 64).chars().count(), 65);
        assert_eq!(clip(&"y".repeat(64), 64), "y".repeat(64));
    }
}
