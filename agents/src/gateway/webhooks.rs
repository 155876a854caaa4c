//! Which protocols accept webhooks, and with which secrets.
//!
//! Built once at start from the loaded protocols and the environment (the caller passes the
//! lookup, so nothing here reads the process environment and tests need not set it). A secret
//! that is missing at start stays missing: the process must be restarted with it, and until then
//! that protocol's requests get a 503 naming the variable.

use super::signature::Secret;
use muster_schemas::protocol::Protocol;
use muster_schemas::protocol::model::Trigger;
use std::collections::BTreeMap;

/// The webhook secrets of every loaded protocol.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    protocols: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    /// Secrets found, one per webhook trigger whose variable is set.
    secrets: Vec<Secret>,
    /// Variables named by a webhook trigger but unset or empty.
    missing: Vec<String>,
}

/// What a protocol id resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// No protocol with that id was loaded.
    UnknownProtocol,
    /// The protocol exists but declares no `webhook` trigger.
    NoWebhook,
    /// Every variable its webhook triggers name is unset or empty.
    SecretMissing(&'a [String]),
    /// The secrets a request may be signed with.
    Secrets(&'a [Secret]),
}

impl Webhooks {
    /// Collects each protocol's webhook secrets, reading variables through `env` (an empty value
    /// counts as unset: an empty HMAC key would accept anyone who knows the scheme).
    pub fn from_protocols<'a>(
        protocols: impl IntoIterator<Item = &'a Protocol>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let mut by_id = BTreeMap::new();
        for protocol in protocols {
            let mut entry = Entry::default();
            for trigger in &protocol.triggers {
                let Trigger::Webhook(webhook) = trigger else { continue };
                match env(&webhook.secret_env).filter(|value| !value.is_empty()) {
                    Some(value) => entry.secrets.push(Secret::new(value)),
                    None => entry.missing.push(webhook.secret_env.clone()),
                }
            }
            by_id.insert(protocol.id.clone(), entry);
        }
        Self { protocols: by_id }
    }

    /// What a request for `protocol` may be checked against.
    pub fn lookup(&self, protocol: &str) -> Lookup<'_> {
        match self.protocols.get(protocol) {
            None => Lookup::UnknownProtocol,
            Some(entry) if !entry.secrets.is_empty() => Lookup::Secrets(&entry.secrets),
            Some(entry) if !entry.missing.is_empty() => Lookup::SecretMissing(&entry.missing),
            Some(_) => Lookup::NoWebhook,
        }
    }

    /// Protocols that accept webhooks, with the variables still missing for each (for the
    /// start-up log, so a forgotten secret shows before the first request does).
    pub fn summary(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.protocols
            .iter()
            .filter(|(_, entry)| !entry.secrets.is_empty() || !entry.missing.is_empty())
            .map(|(id, entry)| (id.as_str(), entry.missing.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_schemas::protocol::parse_protocol;

    fn protocol(id: &str, triggers: &str) -> Protocol {
        let text = format!("id: {id}\n{triggers}steps:\n  - {{id: one, owner: sre, exec: {{program: 'true'}}}}\n");
        parse_protocol("test.yaml", &text).unwrap()
    }

    #[test]
    fn protocols_resolve_to_their_secrets_or_say_what_is_missing() {
        let protocols = [
            protocol("plain", ""),
            protocol("hooked", "triggers:\n  - webhook: {secret_env: HOOK}\n"),
            protocol("unset", "triggers:\n  - webhook: {secret_env: NOT_SET}\n"),
            protocol("empty", "triggers:\n  - webhook: {secret_env: EMPTY}\n"),
            protocol("rotating", "triggers:\n  - webhook: {secret_env: OLD}\n  - webhook: {secret_env: NEW}\n"),
        ];
        let env = |name: &str| match name {
            "HOOK" | "OLD" | "NEW" => Some(format!("secret-{name}")),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let webhooks = Webhooks::from_protocols(&protocols, env);
        assert_eq!(webhooks.lookup("nope"), Lookup::UnknownProtocol);
        assert_eq!(webhooks.lookup("plain"), Lookup::NoWebhook);
        assert_eq!(webhooks.lookup("hooked"), Lookup::Secrets(&[Secret::new("secret-HOOK")]));
        assert_eq!(webhooks.lookup("unset"), Lookup::SecretMissing(&["NOT_SET".to_owned()]));
        assert_eq!(webhooks.lookup("empty"), Lookup::SecretMissing(&["EMPTY".to_owned()]));
        assert!(matches!(webhooks.lookup("rotating"), Lookup::Secrets(s) if s.len() == 2));
        let summary: Vec<_> = webhooks.summary().map(|(id, _)| id).collect();
        assert_eq!(summary, ["empty", "hooked", "rotating", "unset"]);
    }
}
