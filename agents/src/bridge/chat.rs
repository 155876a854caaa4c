//! The room → muster: `/sync` long-polls from the saved position, each message read as a
//! command, answers signed and sent, and the outcome posted in the prompt's thread.

use super::answers::{self, Outcome};
use super::commands::{Command, HELP, PromptId};
use super::matrix::{self, ChatMessage};
use super::{Error, Shared, millis, pause, render, retrying_matrix, txn_id};
use jiff::Timestamp;
use muster_bus::Bus;
use muster_schemas::message::PromptKind;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

impl<B: Bus> Shared<B> {
    /// The position to sync from. Without a saved one (the first start) the room's history is
    /// skipped: the bridge answers what is said from now on. `Ok(None)` on shutdown.
    pub(super) async fn start_position(&self, shutdown: &CancellationToken) -> Result<Option<String>, Error> {
        if let Some(since) = self.state.since().await? {
            return Ok(Some(since));
        }
        let sync = || self.matrix.sync(&self.room_id, None, Duration::ZERO, 1);
        let Some(batch) = retrying_matrix(&self.matrix, shutdown, "sync", sync, || async {}).await? else {
            return Ok(None);
        };
        self.state.save_since(&batch.next_batch).await?;
        info!("no saved sync position: answering messages from now on");
        Ok(Some(batch.next_batch))
    }

    /// Reads the room until `shutdown`.
    pub(super) async fn chat(self: Arc<Self>, mut since: String, shutdown: CancellationToken) -> Result<(), Error> {
        let options = &self.options;
        loop {
            let sync = || self.matrix.sync(&self.room_id, Some(&since), options.sync_timeout, options.timeline_limit);
            let Some(batch) = retrying_matrix(&self.matrix, &shutdown, "sync", sync, || async {}).await? else {
                return Ok(());
            };
            let mut messages = batch.messages;
            if batch.limited
                && let Some(first) = messages.first().map(|m| m.event_id.clone())
            {
                let gap = || self.matrix.messages_between(&self.room_id, &since, &first, options.max_gap);
                let Some(mut earlier) =
                    retrying_matrix(&self.matrix, &shutdown, "read the gap", gap, || async {}).await?
                else {
                    return Ok(());
                };
                if earlier.len() >= options.max_gap {
                    warn!(
                        max_gap = options.max_gap,
                        "more messages arrived while away than the bridge reads back; older ones are skipped"
                    );
                }
                debug!(count = earlier.len(), "read the messages a limited sync left out");
                earlier.append(&mut messages);
                messages = earlier;
            }
            for message in &messages {
                if shutdown.is_cancelled() {
                    // Not saving the position: these messages come again after a restart.
                    return Ok(());
                }
                if let Err(err) = self.on_message(message, &shutdown).await {
                    warn!(event_id = message.event_id, error = %err, "cannot handle a message; skipping it");
                }
            }
            self.save_position(&batch.next_batch, &shutdown).await;
            since = batch.next_batch;
        }
    }

    /// Saves the sync position, retrying a while: losing it only means handling this batch
    /// again after a restart, which is harmless (same nonces, same reply transaction ids).
    async fn save_position(&self, next_batch: &str, shutdown: &CancellationToken) {
        let mut delay = Duration::from_millis(200);
        for _ in 0..5 {
            match self.state.save_since(next_batch).await {
                Ok(()) => return,
                Err(err) => {
                    warn!(error = %err, retry_in_ms = millis(delay), "cannot save the sync position");
                    if !pause(shutdown, delay).await {
                        return;
                    }
                    delay *= 2;
                }
            }
        }
    }

    /// Acts on one message; `Err` only when even the reply could not be posted.
    async fn on_message(&self, message: &ChatMessage, shutdown: &CancellationToken) -> Result<(), Error> {
        if message.sender == self.user_id || message.is_edit || message.msgtype != "m.text" {
            return Ok(());
        }
        let mentioned = message.mentions.contains(&self.user_id);
        let command = match self.parser.parse(&message.body, mentioned) {
            Ok(None) => return Ok(()),
            Ok(Some(command)) => command,
            Err(err) => {
                return self.reply(message, err.prompt(), &format!("{}: {err}", message.sender), shutdown).await;
            }
        };
        let age_ms = Timestamp::now().as_millisecond().saturating_sub(message.origin_server_ts);
        if u64::try_from(age_ms).is_ok_and(|age| age > millis(self.options.max_command_age)) {
            let text = format!(
                "{}: I was not running when you sent `{}` ({} min ago), so I did nothing. Send it again if it still stands.",
                message.sender,
                render::summary(&command),
                age_ms / 60_000
            );
            return self.reply(message, prompt_of(&command), &text, shutdown).await;
        }
        info!(event_id = message.event_id, sender = message.sender, command = render::summary(&command), "command");
        match &command {
            Command::Help => self.reply(message, None, HELP, shutdown).await,
            Command::Show(prompt) => self.show(message, *prompt, shutdown).await,
            Command::Answer { prompt, .. } => {
                let text = self.answer(message, &command, *prompt).await;
                self.reply(message, Some(*prompt), &text, shutdown).await
            }
        }
    }

    /// Posts the latest notice of `prompt` again, or says why it cannot.
    async fn show(&self, message: &ChatMessage, prompt: PromptId, shutdown: &CancellationToken) -> Result<(), Error> {
        let text = match self.state.notice(prompt).await {
            Ok(Some(stored)) => {
                format!(
                    "{}\n\n(latest notice, repeated for {})",
                    render::notice(&stored.notice, Some(prompt), Timestamp::now()),
                    message.sender
                )
            }
            Ok(None) => match self.state.registered(prompt).await {
                Ok(Some(entry)) if entry.is_kind(prompt.kind) => {
                    format!(
                        "{}: {prompt} ({}) exists, but I have not seen a notice for it yet.",
                        message.sender, entry.title
                    )
                }
                Ok(_) => unknown(&message.sender, prompt),
                Err(err) => unavailable(&message.sender, &err),
            },
            Err(err) => unavailable(&message.sender, &err),
        };
        self.reply(message, Some(prompt), &text, shutdown).await
    }

    /// Signs and sends an answer; returns what to tell the room.
    async fn answer(&self, message: &ChatMessage, command: &Command, prompt: PromptId) -> String {
        let Command::Answer { action, note, .. } = command else { return String::new() };
        let sender = &message.sender;
        let entry = match self.state.registered(prompt).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return unknown(sender, prompt),
            Err(err) => return unavailable(sender, &err),
        };
        if !entry.is_kind(prompt.kind) {
            let actual = serde_json::from_value::<PromptKind>(serde_json::Value::String(entry.kind.clone()))
                .map(|kind| format!(" (number {} is {}-{})", prompt.number, kind.prefix(), prompt.number))
                .unwrap_or_default();
            return format!("{sender}: there is no {prompt}{actual}.");
        }
        let options = &self.options;
        let nonce = options.signer.nonce(&self.room_id, &message.event_id);
        let body = answers::body(
            entry.run_id,
            &prompt.to_string(),
            (action.clone(), note.clone()),
            sender,
            nonce,
            options.answer_ttl,
        );
        let signed = match options.signer.sign(&body) {
            Ok(signed) => signed,
            Err(err) => return render::not_delivered(sender, command, &format!("the bridge cannot sign it ({err})")),
        };
        let outcome =
            answers::submit(&self.bus, &options.subjects, &self.sender, entry.run_id, signed, options.answer_timeout)
                .await;
        info!(run_id = %entry.run_id, prompt = %prompt, sender, outcome = ?outcome, "answer sent");
        match outcome {
            Outcome::Accepted(text) => render::accepted(sender, command, &text),
            Outcome::Refused(reason) => render::refused(sender, command, &reason),
            Outcome::NoOrchestrator => render::not_delivered(
                sender,
                command,
                "no orchestrator is taking answers right now. Try again in a minute.",
            ),
            Outcome::Timeout(after) => format!(
                "⚠️ {sender}: muster did not confirm `{}` within {} s; it may or may not have been recorded. `show {prompt}` shows where it stands.",
                render::summary(command),
                after.as_secs()
            ),
            Outcome::Failed(why) => render::not_delivered(sender, command, &why),
        }
    }

    /// Replies to `message`: in the prompt's thread when there is one, else in the thread the
    /// message was posted in, else in the room; one reply per message (the transaction id is the
    /// message's), mentioning its sender.
    async fn reply(
        &self,
        message: &ChatMessage,
        prompt: Option<PromptId>,
        text: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), Error> {
        let root = match prompt {
            Some(prompt) => self.state.thread_root(prompt).await.unwrap_or_else(|err| {
                warn!(error = %err, "cannot read the prompt's thread; replying in place");
                None
            }),
            None => None,
        };
        let root = root.or_else(|| message.thread_root.clone());
        let content = matrix::notice_content(
            text,
            root.as_deref(),
            Some(&message.event_id),
            std::slice::from_ref(&message.sender),
        );
        let txn = txn_id(&format!("reply/{}/{}", self.room_id, message.event_id));
        self.post(&txn, &content, shutdown, || async {}).await.map(drop)
    }
}

fn prompt_of(command: &Command) -> Option<PromptId> {
    match command {
        Command::Help => None,
        Command::Show(prompt) | Command::Answer { prompt, .. } => Some(*prompt),
    }
}

fn unknown(sender: &str, prompt: PromptId) -> String {
    format!("{sender}: I don't know {prompt}: no prompt has that number. Check the id in the notice.")
}

fn unavailable(sender: &str, err: &Error) -> String {
    format!("⚠️ {sender}: I cannot reach muster right now ({err}); nothing was recorded. Try again in a minute.")
}
