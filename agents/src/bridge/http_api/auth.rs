//! Bearer tokens: each one stands for one person, who answers as `Identity { http, <id> }`.
//!
//! Tokens are configured as text, one `<id> <token>` pair per line (a token file), or as
//! `<id>=<token>` pairs separated by commas (one environment variable); the binary reads the
//! file or the variable and hands the text here. Only SHA-256 digests of the tokens are kept,
//! and a presented token is compared with every digest in constant time, so neither the
//! comparison's timing nor a memory dump hands out a usable token.

use muster_schemas::answer::{Channel, Identity};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Shorter tokens are refused: a token is a password that scripts keep, so it can be long.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why the token configuration was refused; each names the line or pair and how to fix it,
/// never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// A line or pair is not `<id> <token>` / `<id>=<token>`.
    #[error("{place}: expected `{expected}`")]
    Syntax {
        /// Where (`line 3`, `pair 2`).
        place: String,
        /// The form expected there.
        expected: &'static str,
    },
    /// The token is too short to be a secret.
    #[error(
        "{place}: the token for `{id}` is shorter than {MIN_TOKEN_LEN} characters; generate one with `openssl rand -hex 32`"
    )]
    TooShort {
        /// Where.
        place: String,
        /// Whose token.
        id: String,
    },
    /// Two people share a token, so it could not tell them apart.
    #[error("{place}: `{id}` has the same token as `{other}`; give each person their own")]
    Duplicate {
        /// Where.
        place: String,
        /// The second holder.
        id: String,
        /// The first holder.
        other: String,
    },
    /// No token at all: nobody could use the API.
    #[error("no tokens are configured; the HTTP API would refuse everyone")]
    Empty,
}

/// The configured tokens. `Debug` shows only who holds one.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], String)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").field("holders", &self.entries.iter().map(|(_, id)| id).collect::<Vec<_>>()).finish()
    }
}

impl Tokens {
    /// Parses a token file: `<id> <token>` per line; blank lines and `#` comments are skipped.
    pub fn from_file_text(text: &str) -> Result<Self, TokenError> {
        let mut tokens = Self::default();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let place = format!("line {}", index + 1);
            let mut words = line.split_whitespace();
            let (Some(id), Some(token), None) = (words.next(), words.next(), words.next()) else {
                return Err(TokenError::Syntax { place, expected: "<id> <token>" });
            };
            tokens.add(place, id, token)?;
        }
        tokens.non_empty()
    }

    /// Parses `<id>=<token>,<id>=<token>` (an environment variable's value). Tokens may hold
    /// `=` but not `,`.
    pub fn from_pairs(text: &str) -> Result<Self, TokenError> {
        let mut tokens = Self::default();
        for (index, pair) in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()).enumerate() {
            let place = format!("pair {}", index + 1);
            let Some((id, token)) = pair.split_once('=') else {
                return Err(TokenError::Syntax { place, expected: "<id>=<token>" });
            };
            tokens.add(place, id.trim(), token.trim())?;
        }
        tokens.non_empty()
    }

    fn add(&mut self, place: String, id: &str, token: &str) -> Result<(), TokenError> {
        if id.is_empty() || id.chars().any(char::is_whitespace) {
            return Err(TokenError::Syntax { place, expected: "<id> <token>" });
        }
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort { place, id: id.to_owned() });
        }
        let digest = digest(token);
        if let Some((_, other)) = self.entries.iter().find(|(known, _)| *known == digest) {
            return Err(TokenError::Duplicate { place, id: id.to_owned(), other: other.clone() });
        }
        self.entries.push((digest, id.to_owned()));
        Ok(())
    }

    fn non_empty(self) -> Result<Self, TokenError> {
        if self.entries.is_empty() { Err(TokenError::Empty) } else { Ok(self) }
    }

    /// The person a presented token belongs to. Every digest is compared, whichever matches.
    pub fn identify(&self, presented: &str) -> Option<Identity> {
        let presented = digest(presented);
        let mut found = None;
        for (known, id) in &self.entries {
            if bool::from(known.ct_eq(&presented)) {
                found = Some(id);
            }
        }
        found.map(|id| Identity { channel: Channel::Http, id: id.clone() })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice-token-0123456789";
    const BOB: &str = "bob-token-0123456789ab";

    #[test]
    fn a_token_identifies_its_holder_and_nothing_else_does() {
        let tokens = Tokens::from_file_text(&format!("# people\nalice {ALICE}\n\n  bob\t{BOB}  \n")).unwrap();
        assert_eq!(tokens.identify(ALICE), Some(Identity { channel: Channel::Http, id: "alice".into() }));
        assert_eq!(tokens.identify(BOB).unwrap().id, "bob");
        for wrong in ["", "alice", &ALICE[..ALICE.len() - 1], &format!("{ALICE}x"), &ALICE.to_uppercase()] {
            assert_eq!(tokens.identify(wrong), None, "{wrong:?}");
        }
        assert_eq!(
            Tokens::from_pairs(&format!("alice={ALICE}, bob = {BOB}")).unwrap().identify(BOB).unwrap().id,
            "bob"
        );
    }

    #[test]
    fn bad_configuration_says_where_and_never_shows_a_token() {
        let cases = [
            (Tokens::from_file_text(&format!("alice {ALICE} extra")), "line 1: expected `<id> <token>`"),
            (Tokens::from_file_text("alice short"), "line 1: the token for `alice` is shorter than 16"),
            (
                Tokens::from_file_text(&format!("alice {ALICE}\nbob {ALICE}")),
                "line 2: `bob` has the same token as `alice`",
            ),
            (Tokens::from_file_text("# nobody\n"), "no tokens are configured"),
            (Tokens::from_pairs(&format!("alice:{ALICE}")), "pair 1: expected `<id>=<token>`"),
            (Tokens::from_pairs(""), "no tokens are configured"),
        ];
        for (result, expected) in cases {
            let err = result.unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}");
            assert!(!err.contains(ALICE), "{err}");
        }
        let tokens = Tokens::from_pairs(&format!("alice={ALICE}")).unwrap();
        assert!(!format!("{tokens:?}").contains(ALICE));
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
