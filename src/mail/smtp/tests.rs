//! SmtpMailer against tiny scripted servers on loopback: secrets in errors and Debug,
//! and the attempt timeout. (Delivery itself is tested against a real server in
//! tests/smtp.rs.)

use std::time::{Duration, Instant};

use data_encoding::BASE64;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;
use crate::crypto::secret::SecretString;
use crate::mail::{CodeReason, Recipient};

const PASSWORD: &str = "Tr0ub4dor&3-smtp";

fn code_mail() -> Message {
    Message::BackupCode {
        to: Recipient { username: "alice".to_owned(), email: "alice@example.com".to_owned() },
        reason: CodeReason::Setup,
        codes: vec![SecretString::from("K7QX-M2PD-9WRT-H4NB")],
        expires_at: None,
    }
}

/// A server that offers AUTH and answers every AUTH line with a 535 that echoes it.
async fn echoing_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = match line.split(' ').next().unwrap_or("").to_ascii_uppercase().as_str() {
                        "EHLO" => "250-fake\r\n250 AUTH PLAIN LOGIN\r\n".to_owned(),
                        "AUTH" => format!("535 5.7.8 no such user, you sent: {line} / {PASSWORD}\r\n"),
                        "QUIT" => "221 bye\r\n".to_owned(),
                        _ => "250 ok\r\n".to_owned(),
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A server that accepts connections and never says a word.
async fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

#[tokio::test]
async fn an_echoed_password_never_reaches_the_error() {
    let port = echoing_server().await;
    let url = format!("smtp://mailer:{}@127.0.0.1:{port}", "Tr0ub4dor%263-smtp");
    let mailer = SmtpMailer::from_url(&url, "no-reply@example.com").unwrap();
    let err = mailer.send(crate::outbox::MailId([1; 16]), &code_mail()).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, MailError::Rejected(_)), "{shown}");
    assert!(shown.contains("535") && shown.contains("[REDACTED]"), "{shown}");
    for leak in [
        PASSWORD.to_owned(),
        BASE64.encode(PASSWORD.as_bytes()),
        BASE64.encode(format!("\0mailer\0{PASSWORD}").as_bytes()),
    ] {
        assert!(!shown.contains(&leak), "{leak} leaked: {shown}");
    }
}

#[test]
fn debug_never_shows_the_password() {
    let mailer =
        SmtpMailer::from_url("smtps://mailer:Tr0ub4dor%263-smtp@mail.example.com", "no-reply@example.com").unwrap();
    let debug = format!("{mailer:?}");
    assert!(
        !debug.contains("Tr0ub4dor") && debug.contains("REDACTED") && debug.contains("mail.example.com"),
        "{debug}"
    );
}

#[tokio::test]
async fn a_silent_server_fails_the_attempt_at_its_timeout() {
    let port = silent_server().await;
    let config = SmtpConfig::from_url(&format!("smtp://127.0.0.1:{port}"), "no-reply@example.com")
        .unwrap()
        .command_timeout(Duration::from_millis(300));
    let mailer = SmtpMailer::new(config).unwrap();
    let started = Instant::now();
    let err = mailer.send(crate::outbox::MailId([1; 16]), &code_mail()).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&err, MailError::Unavailable(m) if m.contains("within 300 ms") && m.contains("after 1 attempt")),
        "{err}"
    );
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_bad_recipient_fails_before_connecting() {
    let mailer = SmtpMailer::from_url("smtp://127.0.0.1:9", "no-reply@example.com").unwrap();
    let mut message = code_mail();
    if let Message::BackupCode { to, .. } = &mut message {
        to.email = "not an address".to_owned();
    }
    assert!(matches!(mailer.send(crate::outbox::MailId([1; 16]), &message).await, Err(MailError::Build(_))));
}
