//! Secrets and numbers stay out of logs and stored errors: a Kannel that cannot be reached
//! leaves an `outbox.last_error` and log lines that name neither its password, nor our
//! webhook secret, nor the recipient, nor the text.

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use hashar::{
    channels::Sender,
    clock::{Clock, ManualClock},
    config::SmsProvider,
    domain::Phone,
    outbox::{self, DispatchConfig, Dispatcher, Kind, NewMessage},
};
use sqlx::PgPool;

const KANNEL_PASSWORD: &str = "kannel-password-0123456789";
const WEBHOOK_SECRET: &str = "webhook-secret-0123456789";
const NUMBER: &str = "+992935551234";
const TEXT: &str = "Thank you: pledge 500 TJS for the school";

/// Log lines, as the server would print them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|v| v.clone()).unwrap_or_default()).into_owned()
    }
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_kannel_connection_error_stores_and_logs_no_secret_number_or_text(pool: PgPool) {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Nothing listens on this port: the connection is refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut config = common::test_config();
    config.sms_provider = SmsProvider::Kannel;
    config.providers.kannel.kannel_sendsms_url = format!("http://127.0.0.1:{port}/cgi-bin/sendsms");
    config.providers.kannel.kannel_password = Some(KANNEL_PASSWORD.into());
    config.webhook_secret = Some(WEBHOOK_SECRET.into());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let sender = Arc::new(Sender::from_config(&config, http).expect("kannel settings"));
    tracing::info!(config = ?config, "settings");

    let clock = ManualClock::new(chrono::Utc::now());
    let phone = Phone::parse(NUMBER).expect("phone");
    let id = {
        let mut conn = pool.acquire().await.expect("conn");
        outbox::enqueue(
            &mut conn,
            &NewMessage {
                to: &phone,
                body: TEXT,
                kind: Kind::Reply,
                inbound_id: None,
            },
            "kannel",
            3,
            clock.now(),
        )
        .await
        .expect("queued")
    };
    let dispatcher = Dispatcher::new(
        pool.clone(),
        sender,
        Arc::new(clock.clone()),
        DispatchConfig {
            idle_poll: Duration::from_millis(10),
            ..DispatchConfig::default()
        },
    );
    let round = dispatcher.run_once().await.expect("round");
    assert_eq!(round.retried, 1, "{round:?}");

    let (status, last_error): (String, Option<String>) =
        sqlx::query_as("select status, last_error from outbox where id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(status, "queued");
    let last_error = last_error.expect("the error is stored");
    assert!(last_error.contains("onnect"), "{last_error}");
    let logs = logs.text();
    assert!(logs.contains("WARN"), "the failure is logged:\n{logs}");
    let digits = NUMBER.trim_start_matches('+');
    for (what, leak) in [
        ("kannel password", KANNEL_PASSWORD),
        ("webhook secret", WEBHOOK_SECRET),
        ("phone number", digits),
        ("text", "pledge 500"),
    ] {
        assert!(
            !last_error.contains(leak),
            "{what} in outbox.last_error: {last_error}"
        );
        assert!(!logs.contains(leak), "{what} in the logs:\n{logs}");
    }
}
