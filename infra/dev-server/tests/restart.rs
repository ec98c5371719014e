//! The real `dev-server` binary keeps accounts across a restart (SIGTERM flushes the store).

use serde_json::{json, Value};
use std::process::{Child, Command};
use std::time::Duration;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn start(data_dir: &std::path::Path, port: u16) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_dev-server"))
        .args(["--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .spawn()
        .expect("start dev-server");
    let server = Server(child);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dev-server did not listen on {port}");
}

fn terminate(mut server: Server) {
    let pid = server.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = server.0.wait().expect("wait");
    assert!(exit.success(), "graceful exit, got {exit:?}");
}

#[tokio::test]
async fn accounts_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("tollgate-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let creds = json!({"email": "restart@example.com", "password": "correct horse battery staple"});

    let server = start(&dir, port).await;
    let r = http
        .post(format!("{base}/auth/signup"))
        .json(&creds)
        .send()
        .await
        .expect("signup");
    assert_eq!(r.status(), 201);
    let jwks1: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    terminate(server);

    let server = start(&dir, port).await;
    let r = http
        .post(format!("{base}/auth/login"))
        .json(&creds)
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200, "the account is still there");
    let jwks2: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks1, jwks2, "the dev signing key is kept");
    let r = http
        .post(format!("{base}/auth/signup"))
        .json(&creds)
        .send()
        .await
        .expect("signup");
    assert_eq!(r.status(), 409, "the email claim is still there");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
