//! Every subject muster uses, built in one place. The prefix is configurable so several muster
//! installations can share a NATS account.

/// Builds subjects under a prefix (default `muster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Self::new("muster")
    }
}

impl Subjects {
    /// Subjects under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Work for a queue (a role): `muster.work.<queue>`.
    pub fn work(&self, queue: &str) -> String {
        format!("{}.work.{queue}", self.prefix)
    }

    /// Every work subject, for the stream definition.
    pub fn work_all(&self) -> String {
        format!("{}.work.*", self.prefix)
    }

    /// A dead letter from a queue: `muster.dlq.<queue>`.
    pub fn dead_letter(&self, queue: &str) -> String {
        format!("{}.dlq.{queue}", self.prefix)
    }

    /// Every dead-letter subject.
    pub fn dead_letter_all(&self) -> String {
        format!("{}.dlq.*", self.prefix)
    }

    /// An event of a run: `muster.evt.<run>.<kind>`.
    pub fn event(&self, run: &str, kind: &str) -> String {
        format!("{}.evt.{run}.{kind}", self.prefix)
    }

    /// Every event subject.
    pub fn event_all(&self) -> String {
        format!("{}.evt.>", self.prefix)
    }

    /// The audit trail of a run: `muster.audit.<run>`.
    pub fn audit(&self, run: &str) -> String {
        format!("{}.audit.{run}", self.prefix)
    }

    /// Every audit subject, for the stream definition.
    pub fn audit_all(&self) -> String {
        format!("{}.audit.>", self.prefix)
    }

    /// Trigger requests for a protocol: `muster.trigger.<protocol>`.
    pub fn trigger(&self, protocol: &str) -> String {
        format!("{}.trigger.{protocol}", self.prefix)
    }

    /// Every trigger subject (what the orchestrator serves).
    pub fn trigger_all(&self) -> String {
        format!("{}.trigger.*", self.prefix)
    }

    /// An agent heartbeat: `muster.agent.hb.<role>.<id>`.
    pub fn heartbeat(&self, role: &str, agent: &str) -> String {
        format!("{}.agent.hb.{role}.{}", self.prefix, sanitize_token(agent))
    }

    /// Every heartbeat.
    pub fn heartbeat_all(&self) -> String {
        format!("{}.agent.hb.>", self.prefix)
    }

    /// Answers to a waiting run (core request/reply): `muster.answer.<run>`.
    pub fn answer(&self, run: &str) -> String {
        format!("{}.answer.{run}", self.prefix)
    }

    /// Every answer subject (what the orchestrator serves).
    pub fn answer_all(&self) -> String {
        format!("{}.answer.*", self.prefix)
    }

    /// Operator controls of a run (core request/reply): `muster.control.<run>`.
    pub fn control(&self, run: &str) -> String {
        format!("{}.control.{run}", self.prefix)
    }

    /// Every control subject (what the orchestrator serves).
    pub fn control_all(&self) -> String {
        format!("{}.control.*", self.prefix)
    }

    /// Stop the running steps of a run (core NATS signal, lossy): `muster.stop.<run>`.
    pub fn stop(&self, run: &str) -> String {
        format!("{}.stop.{run}", self.prefix)
    }

    /// Every stop signal (what agents listen to).
    pub fn stop_all(&self) -> String {
        format!("{}.stop.*", self.prefix)
    }

    /// Step progress of a run (core NATS, lossy): `muster.progress.<run>`.
    pub fn progress(&self, run: &str) -> String {
        format!("{}.progress.{run}", self.prefix)
    }
}

/// Subject tokens cannot hold `.`, `*`, `>` or whitespace; agent ids may (`host.example:42`).
pub fn sanitize_token(token: &str) -> String {
    token.chars().map(|c| if c == '.' || c == '*' || c == '>' || c.is_whitespace() { '_' } else { c }).collect()
}

/// NATS subject matching: `*` matches one token, a trailing `>` one or more.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    let mut pattern_tokens = pattern.split('.').peekable();
    while let Some(p) = pattern_tokens.next() {
        if p == ">" && pattern_tokens.peek().is_none() {
            return subject_tokens.next().is_some();
        }
        match subject_tokens.next() {
            Some(s) if p == "*" || p == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        assert!(matches("a.*.c", "a.b.c"));
        assert!(!matches("a.*.c", "a.b.d"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
    }

    #[test]
    fn agent_ids_become_single_tokens() {
        let s = Subjects::default();
        assert_eq!(s.heartbeat("sre", "sre-1@host.local"), "muster.agent.hb.sre.sre-1@host_local");
    }
}
