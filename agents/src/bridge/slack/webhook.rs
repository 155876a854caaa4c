//! Posting messages to Slack incoming webhooks (and to interaction `response_url`s, which take
//! the same JSON).
//!
//! A webhook URL is a bearer credential: whoever has it can post to the channel. It lives in
//! a [`WebhookUrl`] whose `Debug` hides it, and transport errors are stripped of it
//! (`reqwest::Error::without_url`) before they are logged or returned.
//!
//! Retries: 429 and 5xx are retried up to [`WebhookOptions::max_attempts`] times, waiting what
//! `Retry-After` says when Slack sends it (it does with 429) and an exponential backoff
//! otherwise; any other 4xx is final (a bad payload or a revoked hook does not get better). A
//! timeout is retried too, so a notice can, rarely, be posted twice; a missed notice is worse.

use super::message::notice_message;
use muster_schemas::message::PromptNotice;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;
use std::fmt;
use std::time::Duration;
use tracing::warn;

/// A webhook or response URL. Never printed: `Debug` shows only the host.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(reqwest::Url);

impl WebhookUrl {
    /// Accepts an `http(s)` URL with a host; the error never quotes the URL.
    pub fn parse(url: &str) -> Result<Self, WebhookError> {
        let parsed = reqwest::Url::parse(url.trim()).map_err(|_| WebhookError::InvalidUrl)?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
            return Err(WebhookError::InvalidUrl);
        }
        Ok(Self(parsed))
    }

    /// Whether the URL starts with `prefix`: how the endpoint decides whether a
    /// `response_url` from a payload really points at Slack.
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.0.as_str().starts_with(prefix)
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({}/..)", self.0.host_str().unwrap_or("?"))
    }
}

/// Why a message was not posted. None of them contains the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The configured URL is not an `http(s)` URL.
    #[error("the Slack webhook URL is not a valid http(s) URL")]
    InvalidUrl,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// Slack said no for good (4xx other than 429): the payload or the hook is wrong.
    #[error("Slack refused the message with {status}: {body}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The start of Slack's answer (`invalid_payload`, `no_service`, ...).
        body: String,
    },
    /// Still failing after every attempt.
    #[error("Slack did not take the message after {attempts} attempts; last: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// How hard to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOptions {
    /// Attempts in all, the first included. At least 1.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub first_backoff: Duration,
    /// No wait is longer than this, `Retry-After` included: a longer one gives up instead of
    /// holding the notice queue.
    pub max_wait: Duration,
    /// Each attempt's time limit.
    pub timeout: Duration,
}

impl Default for WebhookOptions {
    /// Four attempts, 0.5 s → 1 s → 2 s apart, waits of at most 60 s, 10 s per attempt.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            first_backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed: what Slack
/// asked for if it did, else the exponential backoff; `None` when that exceeds the limit.
pub fn retry_delay(attempt: u32, retry_after: Option<Duration>, options: &WebhookOptions) -> Option<Duration> {
    let backoff = options.first_backoff.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let wait = retry_after.unwrap_or(backoff);
    (wait <= options.max_wait).then_some(wait)
}

/// Posts JSON messages with retries; cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    options: WebhookOptions,
}

/// What one attempt came to.
enum Attempt {
    Posted,
    Final(WebhookError),
    Retry { reason: String, retry_after: Option<Duration> },
}

impl WebhookClient {
    /// A client with its own connection pool.
    pub fn new(options: WebhookOptions) -> Result<Self, WebhookError> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            // A webhook that redirects is not Slack's; do not follow it with the payload.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| WebhookError::Client(err.without_url().to_string()))?;
        Ok(Self { http, options })
    }

    /// Posts a prompt notice with its buttons.
    pub async fn post_notice(&self, url: &WebhookUrl, notice: &PromptNotice) -> Result<(), WebhookError> {
        self.post(url, &notice_message(notice)).await
    }

    /// Posts any Slack message JSON.
    pub async fn post(&self, url: &WebhookUrl, message: &Value) -> Result<(), WebhookError> {
        let body = message.to_string();
        let attempts = self.options.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let (reason, retry_after) = match self.attempt(url, &body).await {
                Attempt::Posted => return Ok(()),
                Attempt::Final(err) => return Err(err),
                Attempt::Retry { reason, retry_after } => (reason, retry_after),
            };
            let delay = if attempt < attempts { retry_delay(attempt, retry_after, &self.options) } else { None };
            let Some(delay) = delay else {
                return Err(WebhookError::GaveUp { attempts: attempt, last: reason });
            };
            warn!(attempt, reason = %reason, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "slack post failed; retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, url: &WebhookUrl, body: &str) -> Attempt {
        let sent = self.http.post(url.0.clone()).header(CONTENT_TYPE, "application/json").body(body.to_owned()).send();
        let response = match sent.await {
            Ok(response) => response,
            Err(err) => return Attempt::Retry { reason: err.without_url().to_string(), retry_after: None },
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Posted;
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.map(|text| super::sink::clip(text.trim(), 200)).unwrap_or_default();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Attempt::Retry { reason: format!("{status} {text}"), retry_after }
        } else {
            Attempt::Final(WebhookError::Rejected { status: status.as_u16(), body: text })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;
    use tokio::sync::Mutex;

    /// A local Slack stand-in: answers the n-th request with `statuses[n]` (the last one
    /// repeats) and keeps every body.
    struct Hook {
        url: WebhookUrl,
        count: Arc<AtomicUsize>,
        bodies: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    }

    async fn hook(statuses: &'static [(u16, Option<&'static str>)]) -> Hook {
        let count = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (c, b) = (count.clone(), bodies.clone());
        let app = Router::new().route(
            "/services/T000/B000/secret-token",
            post(move |headers: HeaderMap, body: String| {
                let (c, b) = (c.clone(), b.clone());
                async move {
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    b.lock().await.push((headers, body));
                    let (status, retry_after) = statuses[n.min(statuses.len() - 1)];
                    let mut response =
                        (StatusCode::from_u16(status).unwrap(), if status == 200 { "ok" } else { "no_service" })
                            .into_response();
                    if let Some(seconds) = retry_after {
                        response.headers_mut().insert(RETRY_AFTER, seconds.parse().unwrap());
                    }
                    response
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/services/T000/B000/secret-token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hook { url: WebhookUrl::parse(&url).unwrap(), count, bodies }
    }

    fn quick() -> WebhookClient {
        WebhookClient::new(WebhookOptions {
            max_attempts: 3,
            first_backoff: Duration::from_millis(10),
            max_wait: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    fn notice() -> PromptNotice {
        super::super::message::tests::notice("raised", &["rollback", "continue"])
    }

    #[tokio::test]
    async fn a_notice_is_posted_once_as_json_with_its_buttons() {
        let hook = hook(&[(200, None)]).await;
        quick().post_notice(&hook.url, &notice()).await.unwrap();
        assert_eq!(hook.count.load(Ordering::SeqCst), 1);
        let bodies = hook.bodies.lock().await;
        let (headers, body) = &bodies[0];
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        let message: Value = serde_json::from_str(body).unwrap();
        assert_eq!(message, notice_message(&notice()));
    }

    #[tokio::test]
    async fn server_errors_are_retried_until_slack_takes_it() {
        let hook = hook(&[(500, None), (503, None), (200, None)]).await;
        quick().post_notice(&hook.url, &notice()).await.unwrap();
        assert_eq!(hook.count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn persistent_server_errors_give_up_after_max_attempts() {
        let hook = hook(&[(500, None)]).await;
        let err = quick().post_notice(&hook.url, &notice()).await.unwrap_err();
        assert!(matches!(err, WebhookError::GaveUp { attempts: 3, .. }), "{err:?}");
        assert_eq!(hook.count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_client_error_is_final_and_not_retried() {
        let hook = hook(&[(400, None), (200, None)]).await;
        let err = quick().post_notice(&hook.url, &notice()).await.unwrap_err();
        assert_eq!(err, WebhookError::Rejected { status: 400, body: "no_service".into() });
        assert_eq!(hook.count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn too_many_requests_waits_what_retry_after_says() {
        let hook = hook(&[(429, Some("1")), (200, None)]).await;
        let started = Instant::now();
        quick().post_notice(&hook.url, &notice()).await.unwrap();
        assert_eq!(hook.count.load(Ordering::SeqCst), 2);
        assert!(started.elapsed() >= Duration::from_secs(1), "waited only {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_limit_gives_up_at_once() {
        let hook = hook(&[(429, Some("3600")), (200, None)]).await;
        let err = quick().post_notice(&hook.url, &notice()).await.unwrap_err();
        assert!(matches!(err, WebhookError::GaveUp { attempts: 1, .. }), "{err:?}");
        assert_eq!(hook.count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_url_never_shows_in_errors_or_debug_output() {
        // Nothing listens on port 9 of loopback: a transport error, whose text would
        // normally name the URL.
        let url = WebhookUrl::parse("http://127.0.0.1:9/services/T000/B000/secret-token").unwrap();
        let client = WebhookClient::new(WebhookOptions { max_attempts: 1, ..WebhookOptions::default() }).unwrap();
        let err = client.post_notice(&url, &notice()).await.unwrap_err();
        for text in [err.to_string(), format!("{err:?}"), format!("{url:?}")] {
            assert!(!text.contains("secret-token"), "{text}");
        }
        assert!(matches!(WebhookUrl::parse("ftp://example.org/x"), Err(WebhookError::InvalidUrl)));
        assert!(matches!(WebhookUrl::parse("not a url with secret-token"), Err(WebhookError::InvalidUrl)));
    }

    #[test]
    fn backoff_doubles_and_respects_the_limit() {
        let options = WebhookOptions { first_backoff: Duration::from_millis(500), ..WebhookOptions::default() };
        let waits: Vec<_> = (1..=4).map(|attempt| retry_delay(attempt, None, &options)).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000].map(|ms| Some(Duration::from_millis(ms))));
        assert_eq!(retry_delay(1, Some(Duration::from_secs(7)), &options), Some(Duration::from_secs(7)));
        assert_eq!(retry_delay(1, Some(Duration::from_secs(61)), &options), None);
        assert_eq!(retry_delay(40, None, &options), None, "no overflow, just the limit");
    }
}
