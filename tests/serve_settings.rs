//! `hashar serve` as an operator runs it: refused settings stop it at start with a clear
//! message, and unsigned webhooks open to the network need an explicit, logged choice.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `hashar serve` with a clean environment of Hashar settings plus `env`.
fn serve(env: &[(&str, String)]) -> Command {
    hashar(&["serve"], env)
}

/// `hashar <args>` with a clean environment of Hashar settings plus `env`.
fn hashar(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hashar"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "info")
        .env("HASHAR_PRIVATE_CLUSTER", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("HASHAR_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs to its end, within a bound (it must stop by itself).
fn run_to_end(mut cmd: Command) -> (std::process::ExitStatus, String) {
    let mut child = cmd.spawn().expect("hashar starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status, text);
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("hashar serve did not stop by itself");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_refuses_open_unsigned_webhooks_on_a_public_address() {
    let (status, out) = run_to_end(serve(&[(
        "HASHAR_LISTEN",
        format!("0.0.0.0:{}", free_port()),
    )]));
    assert!(!status.success(), "{out}");
    assert!(out.contains("refusing to listen on 0.0.0.0"), "{out}");
    assert!(out.contains("HASHAR_WEBHOOK_SECRET"), "{out}");
    assert!(out.contains("HASHAR_INSECURE_WEBHOOKS=true"), "{out}");
}

#[test]
fn serve_refuses_out_of_range_settings_naming_each() {
    let (status, out) = run_to_end(serve(&[
        (
            "HASHAR_USSD_SESSION_TTL_SECS",
            "18446744073709551615".into(),
        ),
        ("HASHAR_SMS_RATE", "0".into()),
        ("HASHAR_DB_POOL_SIZE", "0".into()),
    ]));
    assert!(!status.success(), "{out}");
    for setting in [
        "HASHAR_USSD_SESSION_TTL_SECS",
        "HASHAR_SMS_RATE",
        "HASHAR_DB_POOL_SIZE",
    ] {
        assert!(out.contains(setting), "{setting} not named:\n{out}");
    }
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn serve_refuses_settings_it_cannot_parse_naming_each_and_what_it_accepts() {
    // Listed together, each with what it accepts; none of them may reach the code that used
    // to turn it into a default (no quiet hours for a notice sent from a phone, 1 message a
    // second).
    let (status, out) = run_to_end(serve(&[
        ("HASHAR_QUIET_HOURS", "9pm-7am".into()),
        ("HASHAR_SMS_PRICE_CURRENCY", "dollars".into()),
        ("HASHAR_SMS_RATE", "0".into()),
    ]));
    assert!(!status.success(), "{out}");
    assert!(out.contains("3 bad setting(s)"), "{out}");
    for (setting, accepted) in [
        ("HASHAR_QUIET_HOURS", "HH:MM-HH:MM"),
        ("HASHAR_SMS_PRICE_CURRENCY", "three-letter code"),
        ("HASHAR_SMS_RATE", "1..=10000"),
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(setting))
            .unwrap_or_else(|| panic!("{setting} not named:\n{out}"));
        assert!(line.contains(accepted), "{setting}: {line}");
    }
    assert!(!out.contains("panicked"), "{out}");
    assert!(!out.contains("hashar listening"), "{out}");
}

#[test]
fn menus_check_refuses_the_screen_limits_serve_refuses() {
    // It used to check the menus against 182 septets while the setting said 500.
    let (status, out) = run_to_end(hashar(
        &["menus", "check"],
        &[("HASHAR_USSD_LIMIT_GSM7", "500".into())],
    ));
    assert!(!status.success(), "{out}");
    assert!(out.contains("HASHAR_USSD_LIMIT_GSM7"), "{out}");
    assert!(out.contains("500 is outside 40..=182"), "{out}");
    assert!(!out.contains("menus ok"), "{out}");
    // and with the limit in range the menus pass
    let (status, out) = run_to_end(hashar(
        &["menus", "check"],
        &[("HASHAR_USSD_LIMIT_GSM7", "182".into())],
    ));
    assert!(status.success(), "{out}");
    assert!(out.contains("menus ok"), "{out}");
}

/// The `postgres` database of `DATABASE_URL`'s server, with another database name.
fn database_url(name: &str) -> String {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut url = url::Url::parse(&base).expect("DATABASE_URL");
    url.set_path(name);
    url.to_string()
}

#[test]
fn serve_starts_open_only_when_told_to_and_warns() {
    let port = free_port();
    let name = format!("hashar_serve_settings_{}", std::process::id());
    let mut child = serve(&[
        ("HASHAR_LISTEN", format!("0.0.0.0:{port}")),
        ("HASHAR_INSECURE_WEBHOOKS", "true".into()),
        ("HASHAR_DISPATCHERS", "0".into()),
        ("DATABASE_URL", database_url(&name)),
    ])
    .spawn()
    .expect("hashar starts");
    // Bounded polling of an external process: until it answers /healthz.
    let started = Instant::now();
    let mut healthy = false;
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                healthy = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Clean up the database it created.
    let _ = Command::new("psql")
        .arg(database_url("postgres"))
        .args([
            "-c",
            &format!("drop database if exists {name} with (force)"),
        ])
        .output();
    assert!(healthy, "serve did not come up:\n{text}");
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("HASHAR_INSECURE_WEBHOOKS=true"), "{text}");
}
