//! What a trigger request carries besides its signature: the idempotency key and the inputs.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The header naming the caller's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The longest idempotency key accepted. It is stored with the run, so it stays short; a UUID
/// or a hash of the triggering event fits many times over.
pub const IDEMPOTENCY_KEY_MAX: usize = 200;

/// Why a request's key or body was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No `Idempotency-Key` header.
    #[error(
        "missing Idempotency-Key header: send a key unique to this event (e.g. a UUID); retries with the same key never start a second run"
    )]
    MissingKey,
    /// The key is empty, too long or has characters other than printable ASCII.
    #[error("Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters")]
    BadKey,
    /// The body is not the JSON this endpoint takes.
    #[error("body is not valid JSON of the form {{\"inputs\": {{\"name\": value}}}}: {0}")]
    BadJson(String),
    /// An input's value is not a string, number or boolean.
    #[error("input `{name}` must be a string, number or boolean, not {found}")]
    BadInput {
        /// The input's name.
        name: String,
        /// What was sent instead.
        found: &'static str,
    },
}

/// Checks the `Idempotency-Key` header value (raw bytes, as received).
pub fn idempotency_key(header: Option<&[u8]>) -> Result<String, RequestError> {
    let bytes = header.ok_or(RequestError::MissingKey)?;
    let printable = bytes.iter().all(|b| (b' '..=b'~').contains(b));
    if bytes.is_empty() || bytes.len() > IDEMPOTENCY_KEY_MAX || !printable {
        return Err(RequestError::BadKey);
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| RequestError::BadKey)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    inputs: Option<BTreeMap<String, Value>>,
}

/// Reads the inputs from a body `{"inputs": {"name": value}}`. An empty body, or one without
/// `inputs`, means none. Numbers and booleans become their JSON text, as `muster trigger -i`
/// would pass them; the orchestrator types every value against the protocol's declarations.
pub fn inputs(body: &[u8]) -> Result<BTreeMap<String, String>, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(BTreeMap::new());
    }
    let body: Body = serde_json::from_slice(body).map_err(|err| RequestError::BadJson(err.to_string()))?;
    body.inputs
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(text) => text,
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                Value::Null => return Err(RequestError::BadInput { name, found: "null" }),
                Value::Array(_) => return Err(RequestError::BadInput { name, found: "an array" }),
                Value::Object(_) => return Err(RequestError::BadInput { name, found: "an object" }),
            };
            Ok((name, text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_two_hundred_printable_ascii_characters() {
        assert_eq!(idempotency_key(Some(b"evt_123 retry-2")), Ok("evt_123 retry-2".to_owned()));
        assert_eq!(idempotency_key(Some("k".repeat(200).as_bytes())), Ok("k".repeat(200)));
        assert_eq!(idempotency_key(None), Err(RequestError::MissingKey));
        for bad in [&b""[..], "k".repeat(201).as_bytes(), b"tab\there", b"nl\n", "caf\u{e9}".as_bytes(), b"\x7f"] {
            assert_eq!(idempotency_key(Some(bad)), Err(RequestError::BadKey), "{bad:?}");
        }
    }

    #[test]
    fn inputs_become_strings() {
        let body = br#"{"inputs": {"env": "staging", "replicas": 3, "ratio": 0.5, "dry_run": true}}"#;
        let expected: BTreeMap<String, String> =
            [("dry_run", "true"), ("env", "staging"), ("ratio", "0.5"), ("replicas", "3")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        assert_eq!(inputs(body), Ok(expected));
    }

    #[test]
    fn no_body_or_no_inputs_means_none() {
        for body in [&b""[..], b"  \n", b"{}", br#"{"inputs": {}}"#, br#"{"inputs": null}"#] {
            assert_eq!(inputs(body), Ok(BTreeMap::new()), "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let Err(RequestError::BadJson(message)) = inputs(b"{\"inputs\": ") else { panic!("truncated JSON accepted") };
        assert!(message.contains("EOF"), "{message}");
        let Err(RequestError::BadJson(message)) = inputs(br#"{"input": {}}"#) else { panic!("typo accepted") };
        assert!(message.contains("unknown field `input`"), "{message}");
        assert!(matches!(inputs(br#"["inputs"]"#), Err(RequestError::BadJson(_))));
        assert!(matches!(inputs(br#"{"inputs": "env=staging"}"#), Err(RequestError::BadJson(_))));
        assert_eq!(
            inputs(br#"{"inputs": {"hosts": ["a", "b"]}}"#),
            Err(RequestError::BadInput { name: "hosts".into(), found: "an array" })
        );
        assert_eq!(
            inputs(br#"{"inputs": {"x": null}}"#),
            Err(RequestError::BadInput { name: "x".into(), found: "null" })
        );
        assert!(matches!(inputs(&[0xff, 0xfe]), Err(RequestError::BadJson(_))));
    }
}
