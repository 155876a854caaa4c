//! Turning a person's chat command into a signed answer and hearing back from the orchestrator.
//!
//! ```text
//!  chat "answer ESC-1 rollback because disk full" from @alice
//!    → AnswerBody { run, ESC-1, Choose{rollback}, note, Identity{matrix, @alice}, nonce, expiry }
//!    → SignedAnswer::sign(body, principal, seed)          (the bridge vouches for @alice)
//!    → request muster.answer.<run>  Payload::SignedAnswer
//!    ← Payload::AnswerReply { accepted, message }
//! ```
//!
//! The nonce is an HMAC of the chat event id under the principal's seed: 128 bits nobody
//! without the seed can predict, different for every chat message, and the same when the bridge
//! handles the same message twice (a crash before its sync position was saved). The orchestrator
//! refuses a used nonce, so a replayed chat message can never be counted twice.

use super::Error;
use crate::wire;
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use muster_bus::subjects::Subjects;
use muster_bus::{Error as BusError, Messaging};
use muster_schemas::answer::{AnswerAction, AnswerBody, Channel, Identity, SignedAnswer};
use muster_schemas::message::AnswerReply;
use muster_schemas::{Payload, Sender};
use sha2::Sha256;
use std::time::Duration;
use uuid::Uuid;

/// The principal the bridge signs as, with its key.
#[derive(Clone)]
pub struct Signer {
    principal: String,
    seed: String,
    public_key: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("principal", &self.principal).field("public_key", &self.public_key).finish()
    }
}

impl Signer {
    /// Checks the seed (an nkey user seed, `SU…`) so a bad key file stops the bridge at start.
    pub fn new(principal: &str, seed: &str) -> Result<Self, Error> {
        let seed = seed.trim();
        let pair = nkeys::KeyPair::from_seed(seed).map_err(|e| Error::Key(e.to_string()))?;
        if !seed.starts_with("SU") {
            return Err(Error::Key("expected a user seed (`SU…`)".into()));
        }
        if principal.is_empty() {
            return Err(Error::Key("the principal name is empty".into()));
        }
        Ok(Self { principal: principal.to_owned(), seed: seed.to_owned(), public_key: pair.public_key() })
    }

    /// The public key (`U…`) the orchestrator's responder map must hold for the principal.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The principal's name.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The nonce for the chat message `event_id` in `room` (see the module docs).
    pub fn nonce(&self, room: &str, event_id: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.seed.as_bytes()) else {
            // HMAC takes keys of any length; this is unreachable, but stay correct anyway.
            return hex::encode(Uuid::now_v7().as_bytes());
        };
        mac.update(b"muster-bridge-nonce\0");
        mac.update(room.as_bytes());
        mac.update(b"\0");
        mac.update(event_id.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Signs `body` as the principal.
    pub fn sign(&self, body: &AnswerBody) -> Result<SignedAnswer, Error> {
        SignedAnswer::sign(body, &self.principal, &self.seed).map_err(|e| Error::Key(e.to_string()))
    }
}

/// An answer from the Matrix user `responder`, issued now and valid for `ttl`: long enough for
/// the orchestrator to see it, short enough that a captured one is soon useless.
pub fn body(
    run_id: Uuid,
    prompt: &str,
    (action, note): (AnswerAction, Option<String>),
    responder: &str,
    nonce: String,
    ttl: Duration,
) -> AnswerBody {
    let issued_at = Timestamp::now();
    let ttl = SignedDuration::try_from(ttl).unwrap_or(SignedDuration::from_secs(300));
    AnswerBody {
        run_id,
        prompt: prompt.to_owned(),
        action,
        note,
        responder: Identity { channel: Channel::Matrix, id: responder.to_owned() },
        nonce,
        issued_at,
        expires_at: issued_at.checked_add(ttl).unwrap_or(issued_at),
    }
}

/// What became of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken; the orchestrator's words about what happens now.
    Accepted(String),
    /// Refused; the orchestrator's reason.
    Refused(String),
    /// Nobody serves the run's answer subject: not recorded.
    NoOrchestrator,
    /// No reply in time: it may or may not have been recorded.
    Timeout(Duration),
    /// The bus failed or the reply was not an answer reply.
    Failed(String),
}

/// Sends a signed answer to the run's answer subject and waits for the reply.
pub async fn submit<M: Messaging>(
    bus: &M,
    subjects: &Subjects,
    sender: &Sender,
    run_id: Uuid,
    signed: SignedAnswer,
    timeout: Duration,
) -> Outcome {
    let bytes = match wire::seal(sender, Some(run_id), Payload::SignedAnswer(signed)) {
        Ok(bytes) => bytes,
        Err(err) => return Outcome::Failed(format!("cannot encode the answer: {err}")),
    };
    let reply = match bus.request(&subjects.answer(&run_id.to_string()), bytes, timeout).await {
        Ok(reply) => reply,
        Err(BusError::NoResponders(_)) => return Outcome::NoOrchestrator,
        Err(BusError::Timeout) => return Outcome::Timeout(timeout),
        Err(err) => return Outcome::Failed(format!("cannot reach muster: {err}")),
    };
    match wire::decode(&reply).map(|envelope| envelope.payload) {
        Ok(Payload::AnswerReply(AnswerReply { accepted: true, message })) => Outcome::Accepted(message),
        Ok(Payload::AnswerReply(AnswerReply { accepted: false, message })) => Outcome::Refused(message),
        Ok(other) => Outcome::Failed(format!("muster answered {} instead of an answer reply", other.kind())),
        Err(err) => Outcome::Failed(format!("undecodable reply from muster: {err}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use muster_bus::memory::MemoryBus;
    use muster_bus::{Request, Subscription};
    use muster_schemas::Component;
    use muster_schemas::answer::new_key_pair;

    #[test]
    fn nonces_are_per_message_stable_and_keyed() {
        let (seed, _) = new_key_pair().unwrap();
        let (other, _) = new_key_pair().unwrap();
        let signer = Signer::new("bridge", &seed).unwrap();
        let nonce = signer.nonce("!room", "$event1");
        assert_eq!(nonce.len(), 32);
        assert!(nonce.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(nonce, signer.nonce("!room", "$event1"));
        assert_ne!(nonce, signer.nonce("!room", "$event2"));
        assert_ne!(nonce, Signer::new("bridge", &other).unwrap().nonce("!room", "$event1"));
    }

    #[test]
    fn bad_keys_are_refused_at_start() {
        assert!(Signer::new("bridge", "not a seed").is_err());
        let account = nkeys::KeyPair::new_account().seed().unwrap();
        assert!(Signer::new("bridge", &account).is_err(), "account seeds are not user keys");
        let (seed, _) = new_key_pair().unwrap();
        assert!(Signer::new("", &seed).is_err());
        assert!(!format!("{:?}", Signer::new("bridge", &seed).unwrap()).contains(&seed));
    }

    #[tokio::test]
    async fn answers_are_signed_and_replies_read() {
        let (seed, public) = new_key_pair().unwrap();
        let signer = Signer::new("bridge", &seed).unwrap();
        let bus = MemoryBus::new();
        let subjects = Subjects::default();
        let run = Uuid::now_v7();
        let mut requests = bus.serve(&subjects.answer(&run.to_string())).await.unwrap();
        let server = tokio::spawn(async move {
            let request = requests.next().await.unwrap();
            let Payload::SignedAnswer(signed) = wire::decode(request.payload()).unwrap().payload else { panic!() };
            let body = signed.open(&public).unwrap();
            let sender = Sender { component: Component::Orchestrator, role: None, id: "o".into() };
            let reply = AnswerReply { accepted: false, message: format!("{} may not answer", body.responder.id) };
            request.respond(wire::seal(&sender, None, Payload::AnswerReply(reply)).unwrap()).await.unwrap();
            body
        });
        let action = (AnswerAction::Acknowledge, None);
        let body = body(run, "ESC-1", action, "@m:localhost", "00".into(), Duration::from_secs(300));
        let signed = signer.sign(&body).unwrap();
        assert_eq!(body.expires_at.as_second() - body.issued_at.as_second(), 300);
        let sender = Sender { component: Component::Bridge, role: None, id: "b".into() };
        let outcome = submit(&bus, &subjects, &sender, run, signed, Duration::from_secs(5)).await;
        assert_eq!(outcome, Outcome::Refused("@m:localhost may not answer".into()));
        assert_eq!(server.await.unwrap(), body);
        let other = Uuid::now_v7();
        let signed = signer
            .sign(&super::body(
                other,
                "M-2",
                (AnswerAction::Confirm, None),
                "@m:l",
                "01".into(),
                Duration::from_secs(1),
            ))
            .unwrap();
        let nobody = submit(&bus, &subjects, &sender, other, signed, Duration::from_millis(200)).await;
        assert!(matches!(nobody, Outcome::NoOrchestrator | Outcome::Timeout(_)), "{nobody:?}");
    }
}
