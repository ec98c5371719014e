//! The dev server's optional SMTP (`TOLLGATE_SMTP_URL`) through `lettre`, against a real SMTP
//! server: aiosmtpd (PyPI, installed by infra/test.sh) with its debugging handler, which prints
//! every message it receives. The mail arrives once with its subject, recipient and both parts,
//! and is also written to the outbox directory. Skipped when aiosmtpd is missing, except when
//! `CI=true`, where it fails.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;
use tollgate::mailer::{Mailer, OutgoingMail};

#[tokio::test]
async fn mail_goes_through_smtp_and_into_the_outbox() {
    let available = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true needs aiosmtpd (infra/test.sh installs it)"
        );
        eprintln!("skipped: python3 -m pip install aiosmtpd");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let mut server = Command::new("python3")
        .args([
            "-u",
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Debugging",
            "-l",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    for _ in 0..100 {
        // Not a connection to itself (see `common::listening`).
        if let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            if stream.local_addr().ok() != stream.peer_addr().ok() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = std::env::temp_dir().join(format!("tollgate-smtp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mailer = dev_server::mail::DevMailer::new(
        dir.clone(),
        Some(&format!("smtp://127.0.0.1:{port}")),
        "Tollgate <no-reply@example.com>",
    )
    .expect("mailer");
    let mail = OutgoingMail {
        id: "0193a0b0-0000-7000-8000-000000000001".into(),
        to: "ada@example.com".into(),
        subject: "Verify your email for Tollgate".into(),
        text: "Open https://app.example.com/verify-email?token=abc".into(),
        html: "<p>Open the link</p>".into(),
    };
    mailer.send(&mail).await.expect("send");
    // Sending the same cause again is a no-op: the outbox already has it.
    mailer.send(&mail).await.expect("send again");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = server.kill();
    let _ = server.wait();
    let mut printed = String::new();
    server
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut printed)
        .expect("read");
    assert_eq!(
        printed
            .matches("Subject: Verify your email for Tollgate")
            .count(),
        1,
        "{printed}"
    );
    assert!(printed.contains("To: ada@example.com"), "{printed}");
    assert!(
        printed.contains("text/plain") && printed.contains("text/html"),
        "{printed}"
    );
    assert_eq!(mailer.list().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
