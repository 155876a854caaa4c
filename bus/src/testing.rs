//! A real `nats-server` for tests: a free loopback port, its own store directory,
//! `sync_interval: always`, killed when dropped.
//!
//! The binary is found through `MUSTER_NATS_SERVER`, then the project-local tools directory that
//! `scripts/test` fills (`.tools/bin/nats-server`), then `PATH`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server` owned by a test.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    binary: PathBuf,
}

/// Locates the `nats-server` binary.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MUSTER_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/nats-server");
    if local.exists() {
        return local;
    }
    PathBuf::from("nats-server")
}

/// A port nothing listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsServer {
    /// Starts a server with JetStream and waits until it accepts connections.
    pub fn start() -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let mut server = Self { child: None, port, dir, binary: nats_server_binary() };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let store = self.dir.path().join("store");
        let config = self.dir.path().join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\nmax_payload: 2MB\njetstream {{\n  store_dir: {store:?}\n  sync_interval: always\n  max_file_store: 1G\n  max_memory_store: 64M\n}}\n",
                port = self.port,
            ),
        )?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("nats.log"))?;
        let child =
            Command::new(&self.binary).arg("-c").arg(&config).stdout(Stdio::null()).stderr(log).spawn().map_err(
                |e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("cannot start {}: {e} (run scripts/test to install it)", self.binary.display()),
                    )
                },
            )?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(20))
    }

    fn wait_ready(&mut self, limit: Duration) -> std::io::Result<()> {
        let started = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while started.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(std::io::Error::other(format!(
                    "nats-server exited early ({status}); log:\n{}",
                    self.log()
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
                && self.log().contains("Server is ready")
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("nats-server not ready; log:\n{}", self.log())))
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let Ok(file) = std::fs::File::open(self.dir.path().join("nats.log")) else { return String::new() };
        BufReader::new(file).lines().map_while(Result::ok).collect::<Vec<_>>().join("\n")
    }

    /// Kills the server with SIGKILL (no clean shutdown), keeping its store.
    pub fn kill(&mut self) -> std::io::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill()?;
        std::fs::write(self.dir.path().join("nats.log"), "")?;
        self.spawn()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
