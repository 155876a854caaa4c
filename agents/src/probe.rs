//! Native checks: `http`, `tcp`, `tls` and fixed waits, made by the agent itself — no shell, no
//! curl — so they behave the same everywhere and report measurements as typed outputs
//! (`status`, `latency_ms`, `days_valid`).

use crate::exec::ExecReport;
use muster_schemas::message::{Outcome, Probe};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What a check found.
#[derive(Debug)]
pub struct ProbeReport {
    /// Outcome, exit code (none) and text, as for a program.
    pub report: ExecReport,
    /// Measurements.
    pub outputs: BTreeMap<String, Value>,
}

/// Makes the check, bounded by `timeout`; `None` when cancelled (shutdown).
pub async fn run(probe: &Probe, timeout: Duration, cancel: &CancellationToken) -> Option<ProbeReport> {
    let started = Instant::now();
    let checked = tokio::select! {
        () = cancel.cancelled() => return None,
        checked = tokio::time::timeout(timeout, check(probe)) => checked,
    };
    let (result, outputs) = match checked {
        Ok(found) => found,
        Err(_) => (Err(format!("no answer within {timeout:?}")), BTreeMap::new()),
    };
    let outcome = match (&result, started.elapsed() >= timeout) {
        (Ok(_), _) => Outcome::Succeeded,
        (Err(_), true) => Outcome::TimedOut,
        (Err(_), false) => Outcome::Failed,
    };
    let (stdout_tail, stderr_tail) = match result {
        Ok(summary) => (summary, String::new()),
        Err(problem) => (String::new(), problem),
    };
    let report = ExecReport {
        outcome,
        exit_code: None,
        stdout_tail,
        stderr_tail,
        stdout_full: None,
        duration: started.elapsed(),
    };
    Some(ProbeReport { report, outputs })
}

type Found = (Result<String, String>, BTreeMap<String, Value>);

async fn check(probe: &Probe) -> Found {
    match probe {
        Probe::Http { method, url, headers, body, expect_status, max_latency_ms, body_matches } => {
            http(method, url, headers, body.as_deref(), expect_status, *max_latency_ms, body_matches.as_deref()).await
        }
        Probe::Tcp { host, port, max_latency_ms } => tcp(host, *port, *max_latency_ms).await,
        Probe::Tls { host, port, server_name, min_days_valid } => tls(host, *port, server_name, *min_days_valid).await,
        Probe::Wait { duration_ms } => {
            tokio::time::sleep(Duration::from_millis(*duration_ms)).await;
            (Ok(format!("waited {duration_ms} ms")), BTreeMap::new())
        }
    }
}

fn latency(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn too_slow(latency_ms: u64, max: Option<u64>) -> Option<String> {
    max.filter(|max| latency_ms > *max)
        .map(|max| format!("answered in {latency_ms} ms, more than the allowed {max} ms"))
}

async fn http(
    method: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: Option<&str>,
    expect: &[u16],
    max_latency_ms: Option<u64>,
    body_matches: Option<&str>,
) -> Found {
    let mut outputs = BTreeMap::new();
    let method = match reqwest::Method::from_bytes(method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return (Err(format!("invalid HTTP method `{method}`")), outputs),
    };
    let client = match reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build() {
        Ok(c) => c,
        Err(e) => return (Err(format!("cannot build an HTTP client: {e}")), outputs),
    };
    let mut request = client.request(method, url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let started = Instant::now();
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return (Err(format!("request to {url} failed: {e}")), outputs),
    };
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let latency_ms = latency(started);
    outputs.insert("status".to_owned(), Value::from(status));
    outputs.insert("latency_ms".to_owned(), Value::from(latency_ms));
    if !expect.contains(&status) {
        return (Err(format!("{url} answered {status}; expected {expect:?}")), outputs);
    }
    if let Some(problem) = too_slow(latency_ms, max_latency_ms) {
        return (Err(format!("{url} {problem}")), outputs);
    }
    if let Some(pattern) = body_matches {
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(&text) => {}
            Ok(_) => return (Err(format!("the body of {url} does not match `{pattern}`")), outputs),
            Err(e) => return (Err(format!("invalid pattern `{pattern}`: {e}")), outputs),
        }
    }
    (Ok(format!("{url} answered {status} in {latency_ms} ms")), outputs)
}

async fn tcp(host: &str, port: u16, max_latency_ms: Option<u64>) -> Found {
    let mut outputs = BTreeMap::new();
    let started = Instant::now();
    if let Err(e) = tokio::net::TcpStream::connect((host, port)).await {
        return (Err(format!("cannot connect to {host}:{port}: {e}")), outputs);
    }
    let latency_ms = latency(started);
    outputs.insert("latency_ms".to_owned(), Value::from(latency_ms));
    match too_slow(latency_ms, max_latency_ms) {
        Some(problem) => (Err(format!("{host}:{port} {problem}")), outputs),
        None => (Ok(format!("connected to {host}:{port} in {latency_ms} ms")), outputs),
    }
}

async fn tls(host: &str, port: u16, server_name: &str, min_days_valid: Option<u32>) -> Found {
    use tokio_rustls::rustls;
    let mut outputs = BTreeMap::new();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = match rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
        Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
        Err(e) => return (Err(format!("cannot configure TLS: {e}")), outputs),
    };
    let name = match rustls::pki_types::ServerName::try_from(server_name.to_owned()) {
        Ok(name) => name,
        Err(e) => return (Err(format!("`{server_name}` is not a server name: {e}")), outputs),
    };
    let started = Instant::now();
    let stream = match tokio::net::TcpStream::connect((host, port)).await {
        Ok(s) => s,
        Err(e) => return (Err(format!("cannot connect to {host}:{port}: {e}")), outputs),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = match connector.connect(name, stream).await {
        Ok(tls) => tls,
        Err(e) => return (Err(format!("TLS handshake with {host}:{port} as `{server_name}` failed: {e}")), outputs),
    };
    outputs.insert("latency_ms".to_owned(), Value::from(latency(started)));
    let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        return (Err("the server sent no certificate".to_owned()), outputs);
    };
    let days = match days_valid(leaf.as_ref(), jiff::Timestamp::now().as_second()) {
        Ok(days) => days,
        Err(problem) => return (Err(problem), outputs),
    };
    outputs.insert("days_valid".to_owned(), Value::from(days));
    match min_days_valid {
        Some(min) if days < i64::from(min) => (
            Err(format!("the certificate of `{server_name}` expires in {days} days; at least {min} required")),
            outputs,
        ),
        _ => (Ok(format!("certificate of `{server_name}` valid for {days} more days")), outputs),
    }
}

/// Whole days from `now` (Unix seconds) until the certificate's `notAfter`.
pub fn days_valid(der: &[u8], now: i64) -> Result<i64, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    Ok((cert.validity().not_after.timestamp() - now).div_euclid(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server answering `status` with `body`.
    async fn serve_once(status: u16, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let reply =
                    format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        format!("http://{addr}/healthz")
    }

    fn http_probe(url: String, pattern: Option<&str>) -> Probe {
        Probe::Http {
            method: "GET".into(),
            url,
            headers: BTreeMap::new(),
            body: None,
            expect_status: vec![200],
            max_latency_ms: Some(5_000),
            body_matches: pattern.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn http_checks_status_and_body() {
        let cancel = CancellationToken::new();
        let ok = run(
            &http_probe(serve_once(200, "{\"status\":\"ok\"}").await, Some("\"ok\"")),
            Duration::from_secs(5),
            &cancel,
        )
        .await
        .unwrap();
        assert_eq!(ok.report.outcome, Outcome::Succeeded, "{:?}", ok.report);
        assert_eq!(ok.outputs["status"], Value::from(200));
        let bad = run(&http_probe(serve_once(503, "down").await, None), Duration::from_secs(5), &cancel).await.unwrap();
        assert_eq!(bad.report.outcome, Outcome::Failed);
        assert!(bad.report.stderr_tail.contains("answered 503"), "{}", bad.report.stderr_tail);
        let mismatch = run(&http_probe(serve_once(200, "nope").await, Some("\"ok\"")), Duration::from_secs(5), &cancel)
            .await
            .unwrap();
        assert!(mismatch.report.stderr_tail.contains("does not match"));
    }

    #[tokio::test]
    async fn tcp_connects_or_explains() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cancel = CancellationToken::new();
        let open =
            run(&Probe::Tcp { host: "127.0.0.1".into(), port, max_latency_ms: None }, Duration::from_secs(5), &cancel)
                .await
                .unwrap();
        assert_eq!(open.report.outcome, Outcome::Succeeded);
        drop(listener);
        let closed =
            run(&Probe::Tcp { host: "127.0.0.1".into(), port, max_latency_ms: None }, Duration::from_secs(5), &cancel)
                .await
                .unwrap();
        assert_eq!(closed.report.outcome, Outcome::Failed);
        assert!(closed.report.stderr_tail.contains("cannot connect"));
    }

    #[tokio::test]
    async fn tls_refuses_an_untrusted_certificate() {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let der = certified.cert.der().clone();
        let key =
            tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            if let Ok((socket, _)) = listener.accept().await {
                let _ = acceptor.accept(socket).await;
            }
        });
        let probe =
            Probe::Tls { host: "127.0.0.1".into(), port, server_name: "localhost".into(), min_days_valid: Some(1) };
        let found = run(&probe, Duration::from_secs(5), &CancellationToken::new()).await.unwrap();
        assert_eq!(found.report.outcome, Outcome::Failed);
        assert!(found.report.stderr_tail.contains("handshake"), "{}", found.report.stderr_tail);
    }

    #[test]
    fn days_valid_counts_whole_days_to_not_after() {
        let mut params = rcgen::CertificateParams::new(vec!["example.com".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2030, 1, 11);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let jan_1_2030 = 1_893_456_000;
        assert_eq!(days_valid(cert.der(), jan_1_2030), Ok(10));
    }

    #[tokio::test]
    async fn a_wait_is_bounded_by_the_timeout() {
        let found = run(&Probe::Wait { duration_ms: 60_000 }, Duration::from_millis(100), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(found.report.outcome, Outcome::TimedOut);
    }
}
