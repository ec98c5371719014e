//! Starting and stopping the real `dev-server` binary, for this crate's integration tests.
#![allow(dead_code)] // each test file uses a different part

use std::process::{Child, Command};
use std::time::Duration;

/// A running dev-server process, killed when dropped.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts the binary on `127.0.0.1:<port>` with `--data-dir data_dir`; returns once it listens.
pub async fn start(data_dir: &std::path::Path, port: u16) -> Server {
    start_with(data_dir, port, &[]).await
}

/// [`start`] with extra environment variables.
pub async fn start_with(data_dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_dev-server"))
        .args(["--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        // The offline Stripe stand-in answers only without a real Stripe key.
        .env_remove("STRIPE_SECRET_KEY")
        .env_remove("TOLLGATE_SMTP_URL")
        .envs(env.iter().copied())
        .spawn()
        .expect("start dev-server");
    let mut server = Server(child);
    for _ in 0..200 {
        if listening(port).await {
            return server;
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("dev-server exited before listening on {port}: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dev-server did not listen on {port} within 10 s");
}

/// Whether something listens on loopback `port`. A connection to itself does not count: with
/// nothing listening on a port of the ephemeral range, the kernel may hand the connecting
/// socket that very port as its source and connect it to itself (TCP simultaneous open), which
/// made a slow-starting server look ready.
pub async fn listening(port: u16) -> bool {
    match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(stream) => stream.local_addr().ok() != stream.peer_addr().ok(),
        Err(_) => false,
    }
}

/// Sends SIGTERM and asserts a graceful exit.
pub fn terminate(mut server: Server) {
    let pid = server.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = server.0.wait().expect("wait");
    assert!(exit.success(), "graceful exit, got {exit:?}");
}

/// Kills the process at once (SIGKILL): no shutdown, no flush.
pub fn kill(mut server: Server) {
    let _ = server.0.kill();
    let _ = server.0.wait();
}
