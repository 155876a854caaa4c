//! Running an `exec` action: no shell, its own process group, bounded output tails, and a
//! timeout (or a cancellation) that kills the whole group, so a step cannot leave orphans behind.

use muster_schemas::message::{ExecSpec, Outcome};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Bytes of standard output and standard error kept per step (the last ones).
pub const TAIL_BYTES: usize = 4096;

/// Most standard output kept whole when a step's outputs are read from it.
pub const MAX_CAPTURE_BYTES: usize = 1024 * 1024;

/// What an execution produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecReport {
    /// How it ended.
    pub outcome: Outcome,
    /// The exit code, if the program exited on its own.
    pub exit_code: Option<i32>,
    /// The last [`TAIL_BYTES`] of standard output.
    pub stdout_tail: String,
    /// The last [`TAIL_BYTES`] of standard error (or why it could not start).
    pub stderr_tail: String,
    /// All of standard output, when it was asked for and fit in [`MAX_CAPTURE_BYTES`].
    pub stdout_full: Option<String>,
    /// Wall-clock time.
    pub duration: Duration,
}

impl ExecReport {
    /// A report for work that could not be attempted at all.
    pub fn refused(why: &str) -> Self {
        Self {
            outcome: Outcome::SpawnFailed,
            exit_code: None,
            stdout_tail: String::new(),
            stderr_tail: why.to_owned(),
            stdout_full: None,
            duration: Duration::ZERO,
        }
    }
}

/// Why an execution stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// The step's timeout passed.
    TimedOut,
    /// The caller cancelled (shutdown): the result must not be reported as the step's outcome.
    Cancelled,
}

/// Runs `spec` with `extra_env` added, killing the process group on timeout or cancellation.
/// Returns `Err(Interrupted::Cancelled)` only for cancellation.
pub async fn run(
    spec: &ExecSpec,
    extra_env: &BTreeMap<String, String>,
    capture_stdout: bool,
    cancel: &CancellationToken,
) -> Result<ExecReport, Interrupted> {
    let started = Instant::now();
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(&spec.env)
        .envs(extra_env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            return Ok(ExecReport {
                outcome: Outcome::SpawnFailed,
                exit_code: None,
                stdout_tail: String::new(),
                stdout_full: None,
                stderr_tail: format!("cannot start `{}`: {err}", spec.program),
                duration: started.elapsed(),
            });
        }
    };
    let group = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
    let keep = if capture_stdout { MAX_CAPTURE_BYTES } else { TAIL_BYTES };
    let stdout = tokio::spawn(read_tail(child.stdout.take(), keep));
    let stderr = tokio::spawn(read_tail(child.stderr.take(), TAIL_BYTES));
    let timeout = Duration::from_millis(spec.timeout_ms);
    let waited = tokio::select! {
        status = child.wait() => Ok(status),
        () = tokio::time::sleep(timeout) => Err(Interrupted::TimedOut),
        () = cancel.cancelled() => Err(Interrupted::Cancelled),
    };
    if waited.is_err() {
        if let Some(group) = group {
            // The group may already be gone; nothing else to do then.
            let _ = killpg(group, Signal::SIGKILL);
        }
        let _ = child.wait().await;
    }
    let (stdout_text, stdout_complete) = stdout.await.unwrap_or_default();
    let (mut stderr_tail, _) = stderr.await.unwrap_or_default();
    let stdout_full = (capture_stdout && stdout_complete).then(|| stdout_text.clone());
    let stdout_tail = stdout_text;
    let (outcome, exit_code) = match waited {
        Err(Interrupted::Cancelled) => return Err(Interrupted::Cancelled),
        Err(Interrupted::TimedOut) => {
            stderr_tail.push_str(&format!("\n[muster] timed out after {timeout:?}; process group killed"));
            (Outcome::TimedOut, None)
        }
        Ok(Err(err)) => {
            stderr_tail.push_str(&format!("\n[muster] wait failed: {err}"));
            (Outcome::Failed, None)
        }
        Ok(Ok(status)) => match status.code() {
            Some(0) => (Outcome::Succeeded, Some(0)),
            Some(code) => (Outcome::Failed, Some(code)),
            None => {
                use std::os::unix::process::ExitStatusExt;
                stderr_tail.push_str(&format!("\n[muster] killed by signal {}", status.signal().unwrap_or_default()));
                (Outcome::Failed, None)
            }
        },
    };
    Ok(ExecReport {
        outcome,
        exit_code,
        stdout_tail: tail(stdout_tail),
        stderr_tail: tail(stderr_tail),
        stdout_full,
        duration: started.elapsed(),
    })
}

/// Reads a pipe to its end, keeping only the last `keep` bytes; says whether nothing was
/// dropped.
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>, keep: usize) -> (String, bool) {
    let Some(mut pipe) = pipe else { return (String::new(), true) };
    let mut kept: Vec<u8> = Vec::with_capacity(keep.min(64 * 1024));
    let mut complete = true;
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > keep * 2 {
                    kept.drain(..kept.len() - keep);
                    complete = false;
                }
            }
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
        complete = false;
    }
    (String::from_utf8_lossy(&kept).into_owned(), complete)
}

/// Trims text to its last [`TAIL_BYTES`] bytes on a character boundary.
fn tail(mut text: String) -> String {
    if text.len() > TAIL_BYTES {
        let mut cut = text.len() - TAIL_BYTES;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text.drain(..cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(program: &str, args: &[&str], timeout_ms: u64) -> ExecSpec {
        ExecSpec {
            program: program.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: BTreeMap::new(),
            cwd: None,
            timeout_ms,
        }
    }

    #[tokio::test]
    async fn success_failure_and_missing_program() {
        let none = CancellationToken::new();
        let env = BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]);
        let ok = run(&spec("printenv", &["GREETING"], 5_000), &env, false, &none).await.unwrap();
        assert_eq!((ok.outcome, ok.exit_code, ok.stdout_tail.as_str()), (Outcome::Succeeded, Some(0), "hi\n"));
        let failed = run(&spec("false", &[], 5_000), &env, false, &none).await.unwrap();
        assert_eq!((failed.outcome, failed.exit_code), (Outcome::Failed, Some(1)));
        let missing = run(&spec("/nonexistent/tool", &[], 5_000), &env, false, &none).await.unwrap();
        assert_eq!(missing.outcome, Outcome::SpawnFailed);
        assert!(missing.stderr_tail.contains("cannot start"));
    }

    #[tokio::test]
    async fn arguments_are_not_interpreted_by_a_shell() {
        let out = run(&spec("echo", &["$(id)", "a;b"], 5_000), &BTreeMap::new(), false, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(out.stdout_tail, "$(id) a;b\n");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        // The shell starts a grandchild in the background and waits; both must die.
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let report =
            run(&spec("sh", &["-c", &script], 300), &BTreeMap::new(), false, &CancellationToken::new()).await.unwrap();
        assert_eq!(report.outcome, Outcome::TimedOut);
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let alive = nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ");
        assert!(!alive, "grandchild {pid} survived the timeout");
    }

    #[tokio::test]
    async fn output_is_bounded_to_its_tail() {
        let out = run(&spec("seq", &["1", "100000"], 5_000), &BTreeMap::new(), false, &CancellationToken::new())
            .await
            .unwrap();
        assert!(out.stdout_tail.len() <= TAIL_BYTES);
        assert!(out.stdout_tail.ends_with("100000\n"));
    }
}
