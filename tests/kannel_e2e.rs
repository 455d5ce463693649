//! End to end through a real Kannel (Debian packages `kannel` and `kannel-extras`): an SMS
//! from a +7 number enters through Kannel's fake SMSC and smsbox, reaches Hashar's get-url
//! on a real TCP port, Hashar's reply leaves through Kannel's sendsms and reaches the fake
//! SMSC as UCS-2 Cyrillic, and the delivery reports come back and mark it delivered.
//!
//! Everything listens on 127.0.0.1, on ports picked free at run time. The Kannel binaries
//! come from `.ci/install-test-deps`; when they are missing the test says what to install.
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo test --test kannel_e2e`
//! (`KANNEL_E2E_KEEP=1` keeps Kannel's configuration and logs; they are always kept, and
//! printed, when the test fails).

mod common;

use std::{
    fs,
    io::Write,
    net::{SocketAddr, TcpListener as StdTcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::*;
use hashar::{
    app::{load_checked_menus, AppState},
    channels::Sender,
    clock::SystemClock,
    config::SmsProvider,
    http::router,
    outbox::{DispatchConfig, Dispatcher},
};
use sqlx::{PgPool, Row};

const BEARERBOX: &str = "/usr/sbin/bearerbox";
const SMSBOX: &str = "/usr/sbin/smsbox";
const FAKESMSC: &str = "/usr/lib/kannel/test/fakesmsc";

const CONF_TEMPLATE: &str = include_str!("kannel/kannel.conf.in");
const ADMIN_PASSWORD: &str = "e2e-admin";
const SENDSMS_USER: &str = "hashar";
const SENDSMS_PASSWORD: &str = "e2e-sendsms";
/// Kannel has to pass it back on every callback (get-url and dlr-url).
const WEBHOOK_SECRET: &str = "e2e-webhook-secret";

/// A Russian mobile number of the Russian-speaking seeded household's migrant.
const MIGRANT: &str = "+79161234567";
/// A pledge to the seeded bridge project, by its Russian name.
const MO_TEXT: &str = "ОБЕЩАЮ 500 МОСТ";

const POLL: Duration = Duration::from_millis(50);
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Installing Kannel

fn missing_binaries() -> Vec<&'static str> {
    [BEARERBOX, SMSBOX, FAKESMSC]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect()
}

/// Fails clearly when bearerbox, smsbox or fakesmsc is missing. The test installs nothing
/// itself: `.ci/install-test-deps` (run by `.ci/run`) installs the Debian packages.
fn ensure_kannel() {
    let missing = missing_binaries();
    assert!(
        missing.is_empty(),
        "Kannel is not installed (missing {}). Install the Debian packages `kannel` \
         (bearerbox, smsbox) and `kannel-extras` (fakesmsc): run `bash .ci/install-test-deps` \
         as root, or `sudo apt-get install -y kannel kannel-extras`.",
        missing.join(", ")
    );
}

// ---------------------------------------------------------------------------------------
// Ports, files, waiting

/// `n` distinct free loopback ports (all held at once while picking, so no duplicates).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<StdTcpListener> = (0..n)
        .map(|_| StdTcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound address").port())
        .collect()
}

fn unique_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("hashar-kannel-e2e-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).expect("create the temporary Kannel directory");
    dir
}

/// A bounded wait: `tick` sleeps one poll interval, or panics once the time is up.
struct Deadline {
    what: &'static str,
    started: Instant,
    timeout: Duration,
}

impl Deadline {
    fn new(what: &'static str) -> Deadline {
        Deadline {
            what,
            started: Instant::now(),
            timeout: STEP_TIMEOUT,
        }
    }

    async fn tick(&self, state: impl FnOnce() -> String) {
        if self.started.elapsed() > self.timeout {
            panic!(
                "timed out after {:?} waiting for {}; last seen: {}",
                self.timeout,
                self.what,
                state()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `application/x-www-form-urlencoded` decoding to raw bytes, as Kannel's
/// `octstr_url_encode` writes it (`+` is a space).
fn url_decode(s: &str) -> Vec<u8> {
    let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], hex(b.get(i + 1)), hex(b.get(i + 2))) {
            (b'+', ..) => out.push(b' '),
            (b'%', Some(hi), Some(lo)) => {
                out.extend(u8::try_from(hi * 16 + lo).ok());
                i += 2;
            }
            (c, ..) => out.push(c),
        }
        i += 1;
    }
    out
}

fn percent_encode_all(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn utf16be(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

fn from_utf16be(bytes: &[u8]) -> Option<String> {
    let pairs = bytes.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    let units: Vec<u16> = pairs.map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).ok()
}

// ---------------------------------------------------------------------------------------
// What the fake SMSC received

/// One MT as fakesmsc logs it: `Got message N: <from to text|ucs-2|data|udh ...>`
/// (gw/smsc/smsc_fake.c `sms_to_client`).
#[derive(Debug, Clone)]
struct FakeMt {
    from: String,
    to: String,
    /// `text`, `ucs-2`, `data`, or `udh` (then the coding is not shown).
    kind: String,
    udh: Vec<u8>,
    payload: Vec<u8>,
}

fn parse_fakesmsc_log(log: &str) -> Vec<FakeMt> {
    log.lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once("Got message ")?;
            let (_, rest) = rest.split_once(": <")?;
            let line = rest.strip_suffix('>')?;
            let mut words = line.splitn(4, ' ');
            let from = words.next()?.to_owned();
            let to = words.next()?.to_owned();
            let kind = words.next()?.to_owned();
            let rest = words.next().unwrap_or("");
            let (udh, payload) = match kind.as_str() {
                // 7-bit text is written as is, everything else URL-encoded.
                "text" => (Vec::new(), rest.as_bytes().to_vec()),
                "udh" => {
                    let (udh, data) = rest.split_once(" data ")?;
                    (url_decode(udh), url_decode(data))
                }
                _ => (Vec::new(), url_decode(rest)),
            };
            Some(FakeMt {
                from,
                to,
                kind,
                udh,
                payload,
            })
        })
        .collect()
}

/// The concatenation information element of a UDH: (reference, parts, this part).
fn concat_info(udh: &[u8]) -> Option<(u16, u8, u8)> {
    let (&len, rest) = udh.split_first()?;
    let mut ies = rest.get(..usize::from(len))?;
    while let [iei, l, tail @ ..] = ies {
        let data = tail.get(..usize::from(*l))?;
        match (iei, data) {
            (0x00, [r, total, seq]) => return Some((u16::from(*r), *total, *seq)),
            (0x08, [r1, r2, total, seq]) => {
                return Some((u16::from_be_bytes([*r1, *r2]), *total, *seq))
            }
            _ => ies = &tail[usize::from(*l)..],
        }
    }
    None
}

/// The whole text sent to `to`, once every part has arrived: (sender, text, parts).
fn reassembled(mts: &[FakeMt], to: &str, ucs2: bool) -> Option<(String, String, usize)> {
    let parts: Vec<&FakeMt> = mts.iter().filter(|m| m.to == to).collect();
    let first = *parts.first()?;
    let sender = first.from.clone();
    let bytes: Vec<u8> = if parts.len() == 1 && first.udh.is_empty() {
        first.payload.clone()
    } else {
        let mut numbered: Vec<((u16, u8, u8), &FakeMt)> = parts
            .iter()
            .map(|m| concat_info(&m.udh).map(|c| (c, *m)))
            .collect::<Option<_>>()?;
        numbered.sort_by_key(|((_, _, seq), _)| *seq);
        let total = numbered.first().map(|((_, t, _), _)| usize::from(*t))?;
        let in_order = numbered
            .iter()
            .enumerate()
            .all(|(i, ((_, t, seq), _))| usize::from(*t) == total && usize::from(*seq) == i + 1);
        if numbered.len() != total || !in_order {
            return None;
        }
        numbered
            .iter()
            .flat_map(|(_, m)| m.payload.iter().copied())
            .collect()
    };
    let whole = parts.len();
    let text = match (first.kind.as_str(), ucs2) {
        ("ucs-2", _) | ("udh", true) | ("data", true) => from_utf16be(&bytes)?,
        _ => String::from_utf8(bytes).ok()?,
    };
    Some((sender, text, whole))
}

// ---------------------------------------------------------------------------------------
// Kannel's processes

#[derive(Debug, Clone, Copy)]
enum MoCoding {
    Ucs2,
    Text,
}

struct Ports {
    admin: u16,
    smsbox: u16,
    sendsms: u16,
    smsc: u16,
}

/// bearerbox, smsbox and fakesmsc; all killed (in reverse order) when this is dropped,
/// also when the test fails, and then their logs are printed.
struct Kannel {
    dir: PathBuf,
    conf: PathBuf,
    ports: Ports,
    children: Vec<(&'static str, Child)>,
    mo_input: Option<ChildStdin>,
}

impl Kannel {
    fn new(ports: Ports, hashar_port: u16) -> Kannel {
        let dir = unique_dir();
        let conf = dir.join("kannel.conf");
        let text = CONF_TEMPLATE
            .replace("@ADMIN_PORT@", &ports.admin.to_string())
            .replace("@SMSBOX_PORT@", &ports.smsbox.to_string())
            .replace("@SENDSMS_PORT@", &ports.sendsms.to_string())
            .replace("@SMSC_PORT@", &ports.smsc.to_string())
            .replace("@HASHAR_PORT@", &hashar_port.to_string())
            .replace("@LOG_DIR@", &dir.display().to_string())
            .replace("@ADMIN_PASSWORD@", ADMIN_PASSWORD)
            .replace("@SENDSMS_USER@", SENDSMS_USER)
            .replace("@SENDSMS_PASSWORD@", SENDSMS_PASSWORD)
            .replace("@SECRET@", WEBHOOK_SECRET);
        let left: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('@'))
            .collect();
        assert!(
            left.is_empty(),
            "placeholders left in kannel.conf: {left:?}"
        );
        fs::write(&conf, text).expect("write kannel.conf");
        Kannel {
            dir,
            conf,
            ports,
            children: Vec::new(),
            mo_input: None,
        }
    }

    fn spawn(&mut self, name: &'static str, program: &str, args: &[&str], stdin: bool) {
        let out = fs::File::create(self.dir.join(format!("{name}.out"))).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut child = Command::new(program)
            .args(args)
            .current_dir(&self.dir)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        if stdin {
            self.mo_input = child.stdin.take();
        }
        self.children.push((name, child));
    }

    fn start_bearerbox(&mut self) {
        let conf = self.conf.display().to_string();
        self.spawn("bearerbox", BEARERBOX, &["-v", "1", &conf], false);
    }

    fn start_smsbox(&mut self) {
        let conf = self.conf.display().to_string();
        self.spawn("smsbox", SMSBOX, &["-v", "1", &conf], false);
    }

    /// fakesmsc without message arguments reads MO lines from stdin; `-v 0` logs every MT
    /// it gets (`Got message N: <...>`).
    fn start_fakesmsc(&mut self) {
        let port = self.ports.smsc.to_string();
        self.spawn(
            "fakesmsc",
            FAKESMSC,
            &["-H", "127.0.0.1", "-r", &port, "-v", "0"],
            true,
        );
    }

    /// Panics if bearerbox or smsbox died; forgets a fakesmsc that died (it gives up at
    /// once when bearerbox's fake SMSC is not listening yet) and says so.
    fn check_alive(&mut self) -> bool {
        let mut fakesmsc_alive = true;
        let mut i = 0;
        while i < self.children.len() {
            let (name, child) = &mut self.children[i];
            if let Ok(Some(status)) = child.try_wait() {
                if *name == "fakesmsc" {
                    self.children.remove(i);
                    self.mo_input = None;
                    fakesmsc_alive = false;
                    continue;
                }
                panic!("{name} exited early ({status})");
            }
            i += 1;
        }
        fakesmsc_alive && self.children.iter().any(|(n, _)| *n == "fakesmsc")
    }

    async fn status(&self, http: &reqwest::Client) -> Option<String> {
        let url = format!(
            "http://127.0.0.1:{}/status.txt?password={ADMIN_PASSWORD}",
            self.ports.admin
        );
        let response = http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }

    fn smsc_line(status: &str) -> Option<&str> {
        status.lines().find(|l| l.contains("FAKE[FAKE]"))
    }

    fn sendsms_listening(&self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports.sendsms));
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    }

    /// Starts bearerbox, smsbox and fakesmsc in that order, each once the previous is ready.
    async fn start(&mut self, http: &reqwest::Client) {
        self.start_bearerbox();
        let wait = Deadline::new("bearerbox's admin status with the fake SMSC");
        let mut last = String::new();
        loop {
            self.check_alive();
            if let Some(status) = self.status(http).await {
                if Self::smsc_line(&status).is_some() {
                    break;
                }
                last = status;
            }
            wait.tick(|| last.clone()).await;
        }

        self.start_smsbox();
        let wait = Deadline::new("smsbox to connect and open its sendsms port");
        loop {
            self.check_alive();
            if let Some(status) = self.status(http).await {
                if status.contains("smsbox:") && self.sendsms_listening() {
                    break;
                }
                last = status;
            }
            wait.tick(|| last.clone()).await;
        }

        let wait = Deadline::new("fakesmsc to connect (the fake SMSC online)");
        let mut starts = 0;
        loop {
            if !self.check_alive() {
                starts += 1;
                self.start_fakesmsc();
            }
            if let Some(status) = self.status(http).await {
                if Self::smsc_line(&status).is_some_and(|l| l.contains("(online")) {
                    break;
                }
                last = status;
            }
            wait.tick(|| format!("{starts} fakesmsc start(s); status: {last}"))
                .await;
        }
    }

    /// One MO through the fake SMSC, coded as a phone would: Cyrillic as UCS-2 (UTF-16BE,
    /// URL-encoded for fakesmsc), Latin as GSM 7-bit text.
    fn send_mo(&mut self, from: &str, to: &str, text: &str, coding: MoCoding) {
        let line = match coding {
            MoCoding::Ucs2 => format!("{from} {to} ucs2 {}\n", percent_encode_all(&utf16be(text))),
            MoCoding::Text => format!("{from} {to} text {text}\n"),
        };
        let input = self.mo_input.as_mut().expect("fakesmsc is running");
        input
            .write_all(line.as_bytes())
            .and_then(|()| input.flush())
            .expect("write the MO to fakesmsc");
    }

    fn fakesmsc_log(&self) -> String {
        fs::read(self.dir.join("fakesmsc.out"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn dump_logs(&self) {
        for name in [
            "bearerbox.log",
            "smsbox.log",
            "smsbox-access.log",
            "bearerbox.out",
            "smsbox.out",
            "fakesmsc.out",
        ] {
            let text = fs::read(self.dir.join(name))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|e| format!("({e})"));
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!("===== {name} (last {} lines)", tail.len());
            for l in tail {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Kannel {
    fn drop(&mut self) {
        self.mo_input = None;
        for (_, child) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            self.dump_logs();
            eprintln!("Kannel's files are kept in {}", self.dir.display());
        } else if std::env::var_os("KANNEL_E2E_KEEP").is_some() {
            eprintln!("Kannel's files are kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The test

/// One SMS in and its reply out, as the database and the fake SMSC saw them.
struct Trip {
    inbound_id: i64,
    outbox_id: i64,
    body: String,
    encoding: String,
    segments: i32,
    /// Sender, reassembled text and number of parts of the MT at the fake SMSC.
    mt_from: String,
    mt_text: String,
    mt_parts: usize,
    /// `(provider_msg_id, outcome)` of the delivery reports stored for the reply.
    reports: Vec<(String, Option<String>)>,
}

/// Sends `text` from `from` through the fake SMSC, waits for Hashar to queue the reply,
/// dispatches it through sendsms, and waits until the fake SMSC has the whole reply and
/// the delivery reports have marked it delivered.
async fn round_trip(
    kannel: &mut Kannel,
    pool: &PgPool,
    dispatcher: &Dispatcher,
    from: &str,
    to: &str,
    text: &str,
    coding: MoCoding,
) -> Trip {
    // fake SMSC → bearerbox → smsbox → Hashar's get-url → reply queued.
    kannel.send_mo(from, to, text, coding);
    let wait = Deadline::new("the inbound SMS to be handled and its reply queued");
    let (outbox_id, inbound_id, body, encoding, segments) = loop {
        let queued: Option<(i64, Option<i64>, String, String, i32)> = sqlx::query_as(
            "select id, inbound_id, body, encoding, segments from outbox where phone = $1",
        )
        .bind(from)
        .fetch_optional(pool)
        .await
        .expect("the outbox");
        if let Some((id, inbound, body, encoding, segments)) = queued {
            break (
                id,
                inbound.expect("a reply refers to its inbound message"),
                body,
                encoding,
                segments,
            );
        }
        let inbound: Vec<(Option<String>, Option<String>, Option<String>)> =
            sqlx::query_as("select sender, text, outcome from inbound_messages")
                .fetch_all(pool)
                .await
                .expect("inbound messages");
        wait.tick(|| format!("inbound {inbound:?}")).await;
    };

    // outbox → sendsms → bearerbox → fake SMSC.
    let round = dispatcher.drain().await.expect("dispatch the outbox");
    if round.sent != 1 {
        let error: Option<String> =
            sqlx::query_scalar("select last_error from outbox where id = $1")
                .bind(outbox_id)
                .fetch_one(pool)
                .await
                .expect("last error");
        panic!("sendsms did not take the reply: {round:?}, last_error {error:?}");
    }
    let wait = Deadline::new("the whole reply at the fake SMSC");
    let (mt_from, mt_text, mt_parts) = loop {
        let mts = parse_fakesmsc_log(&kannel.fakesmsc_log());
        if let Some(got) = reassembled(&mts, from, encoding == "ucs2") {
            break got;
        }
        wait.tick(|| format!("{mts:?}")).await;
    };

    // fake SMSC ack → bearerbox → smsbox → Hashar's dlr-url (types 8 and 1).
    let wait = Deadline::new("both delivery reports (types 8 and 1) and status delivered");
    let reports = loop {
        let reports: Vec<(String, Option<String>)> = sqlx::query_as(
            "select provider_msg_id, outcome from inbound_messages
              where kind = 'delivery' and provider_msg_id like $1 order by provider_msg_id",
        )
        .bind(format!("ours:{outbox_id}:%"))
        .fetch_all(pool)
        .await
        .expect("delivery reports");
        let status: String = sqlx::query_scalar("select status from outbox where id = $1")
            .bind(outbox_id)
            .fetch_one(pool)
            .await
            .expect("outbox status");
        if reports.len() >= 2 && status == "delivered" {
            break reports;
        }
        wait.tick(|| format!("outbox {status}, reports {reports:?}"))
            .await;
    };
    Trip {
        inbound_id,
        outbox_id,
        body,
        encoding,
        segments,
        mt_from,
        mt_text,
        mt_parts,
        reports,
    }
}

/// What every trip must show: the reply in the outbox is delivered, and the fake SMSC got
/// exactly its text, from the short code, in as many parts as Hashar counted.
async fn assert_delivered(pool: &PgPool, trip: &Trip, short_code: &str) {
    let row = sqlx::query(
        "select provider, kind, status, provider_status, attempts,
                sent_at is not null as sent, delivered_at is not null as delivered
           from outbox where id = $1",
    )
    .bind(trip.outbox_id)
    .fetch_one(pool)
    .await
    .expect("the reply");
    assert_eq!(row.get::<String, _>("provider"), "kannel");
    assert_eq!(row.get::<String, _>("kind"), "reply");
    assert_eq!(row.get::<String, _>("status"), "delivered");
    assert_eq!(
        row.get::<Option<String>, _>("provider_status").as_deref(),
        Some("1")
    );
    assert_eq!(row.get::<i32, _>("attempts"), 1);
    assert!(row.get::<bool, _>("sent") && row.get::<bool, _>("delivered"));
    assert_eq!(trip.encoding, "ucs2", "{}", trip.body);
    assert_eq!(
        trip.mt_text, trip.body,
        "text at the fake SMSC vs outbox body"
    );
    assert_eq!(trip.mt_from, short_code);
    assert_eq!(
        i32::try_from(trip.mt_parts).ok(),
        Some(trip.segments),
        "parts at the fake SMSC vs segments in the outbox"
    );
    // Each report stored once: SMSC ack (8 → sent) and delivered to the phone (1).
    let id = trip.outbox_id;
    assert_eq!(
        trip.reports,
        vec![
            (format!("ours:{id}:1"), Some("delivered".to_owned())),
            (format!("ours:{id}:8"), Some("sent".to_owned())),
        ]
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn sms_from_a_plus7_number_through_kannel_and_back(pool: PgPool) {
    ensure_kannel();
    let started = Instant::now();

    // A migrant in Russia, a member of the Russian-speaking household.
    let seeded = seed(&pool).await;
    let household: i64 = sqlx::query_scalar("select household_id from phones where phone = $1")
        .bind(PHONE_RU)
        .fetch_one(&pool)
        .await
        .expect("the Russian-speaking household");
    sqlx::query("insert into phones (phone, household_id) values ($1, $2)")
        .bind(MIGRANT)
        .bind(household)
        .execute(&pool)
        .await
        .expect("the migrant's phone");

    // Hashar on a real port, sending through Kannel.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind Hashar's port");
    let hashar_port = listener.local_addr().expect("Hashar's address").port();
    let ports = match free_ports(4)[..] {
        [admin, smsbox, sendsms, smsc] => Ports {
            admin,
            smsbox,
            sendsms,
            smsc,
        },
        _ => unreachable!("four ports were asked for"),
    };
    let mut config = test_config();
    config.sms_provider = SmsProvider::Kannel;
    config.public_url = format!("http://127.0.0.1:{hashar_port}");
    config.webhook_secret = Some(WEBHOOK_SECRET.into());
    config.providers.kannel.kannel_sendsms_url =
        format!("http://127.0.0.1:{}/cgi-bin/sendsms", ports.sendsms);
    config.providers.kannel.kannel_username = SENDSMS_USER.into();
    config.providers.kannel.kannel_password = Some(SENDSMS_PASSWORD.into());
    // No global-sender in Kannel's config: Hashar sends `from`.
    config.providers.kannel.kannel_sender = Some(config.sms_number.clone());
    let short_code = config.sms_number.clone();
    let menus = load_checked_menus(&config).expect("menus pass the check");
    let state = AppState::new(pool.clone(), menus, config.clone()).expect("valid settings");
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    let sender = Sender::from_config(&config, http.clone()).expect("Kannel settings");
    let dispatcher = Dispatcher::new(
        pool.clone(),
        Arc::new(sender),
        Arc::new(SystemClock),
        DispatchConfig::default(),
    );

    let mut kannel = Kannel::new(ports, hashar_port);
    kannel.start(&http).await;
    let ready = started.elapsed();

    // The pledge from the +7 number, typed in Cyrillic (a UCS-2 MO).
    let pledge = round_trip(
        &mut kannel,
        &pool,
        &dispatcher,
        MIGRANT,
        &short_code,
        MO_TEXT,
        MoCoding::Ucs2,
    )
    .await;
    let pledged = started.elapsed();
    // HELP in Latin (a 7-bit MO) from the household's phone at home: the Russian answer is
    // longer than one UCS-2 SMS, so it leaves Kannel concatenated.
    let help = round_trip(
        &mut kannel,
        &pool,
        &dispatcher,
        PHONE_RU,
        &short_code,
        "HELP",
        MoCoding::Text,
    )
    .await;
    let elapsed = started.elapsed();

    // The inbound pledge, stored once, from the +7 number, in Cyrillic.
    let inbound = sqlx::query(
        "select id, provider, provider_msg_id, sender, sender_e164, text, outcome,
                raw #>> '{}' as raw
           from inbound_messages where kind = 'sms' and sender = $1",
    )
    .bind(MIGRANT)
    .fetch_all(&pool)
    .await
    .expect("inbound messages");
    assert_eq!(inbound.len(), 1, "exactly one inbound SMS from {MIGRANT}");
    let inbound = &inbound[0];
    assert_eq!(inbound.get::<i64, _>("id"), pledge.inbound_id);
    assert_eq!(inbound.get::<String, _>("provider"), "kannel");
    assert_eq!(
        inbound.get::<Option<String>, _>("sender_e164").as_deref(),
        Some(MIGRANT)
    );
    assert_eq!(
        inbound.get::<Option<String>, _>("text").as_deref(),
        Some(MO_TEXT)
    );
    assert_eq!(
        inbound.get::<Option<String>, _>("outcome").as_deref(),
        Some("pledge")
    );
    // Kannel's own message id (%I), a UUID.
    assert_eq!(inbound.get::<String, _>("provider_msg_id").len(), 36);
    // mo-recode turned the UCS-2 MO into UTF-8 before calling the get-url; %P is the
    // short code the migrant texted.
    let raw: String = inbound.get("raw");
    assert!(raw.contains("&coding=0&charset=UTF-8&"), "{raw}");
    assert!(raw.contains(&format!("&to={short_code}&")), "{raw}");

    // Exactly one reply to the +7 number, in Cyrillic, delivered.
    let to_migrant: i64 = sqlx::query_scalar("select count(*) from outbox where phone = $1")
        .bind(MIGRANT)
        .fetch_one(&pool)
        .await
        .expect("outbox count");
    assert_eq!(to_migrant, 1, "exactly one outbox row to {MIGRANT}");
    assert!(
        pledge.body.contains("Спасибо")
            && pledge.body.contains("500")
            && pledge.body.contains("Мост"),
        "{}",
        pledge.body
    );
    assert_delivered(&pool, &pledge, &short_code).await;

    // The pledge itself.
    let pledges = sqlx::query(
        "select project_id, household_id, phone, amount::text as amount, currency, channel, status
           from pledges",
    )
    .fetch_all(&pool)
    .await
    .expect("pledges");
    assert_eq!(pledges.len(), 1);
    let p = &pledges[0];
    assert_eq!(p.get::<i64, _>("project_id"), seeded.bridge);
    assert_eq!(p.get::<i64, _>("household_id"), household);
    assert_eq!(p.get::<String, _>("phone"), MIGRANT);
    assert_eq!(p.get::<String, _>("amount"), "500.00");
    assert_eq!(p.get::<String, _>("currency"), "TJS");
    assert_eq!(p.get::<String, _>("channel"), "sms");
    assert_eq!(p.get::<String, _>("status"), "pledged");

    // The concatenated help text arrived whole, and its one pair of delivery reports (for
    // the whole message, not per part) marked it delivered.
    let help_outcome: Option<String> =
        sqlx::query_scalar("select outcome from inbound_messages where id = $1")
            .bind(help.inbound_id)
            .fetch_one(&pool)
            .await
            .expect("the help message");
    assert_eq!(help_outcome.as_deref(), Some("help"));
    assert!(help.body.starts_with("Хашар по SMS"), "{}", help.body);
    assert!(help.segments >= 2, "{}: {}", help.segments, help.body);
    assert_delivered(&pool, &help, &short_code).await;

    // Nothing else left Kannel: no empty SMS for the empty get-url answers.
    let all_mts = parse_fakesmsc_log(&kannel.fakesmsc_log());
    assert_eq!(
        all_mts.len(),
        pledge.mt_parts + help.mt_parts,
        "{all_mts:?}"
    );

    eprintln!(
        "kannel_e2e: Kannel ready in {ready:?}; +7 pledge to delivered reply in {:?} \
         ({} part: {}); HELP to delivered reply in {:?} ({} parts); total {elapsed:?}",
        pledged - ready,
        pledge.mt_parts,
        pledge.mt_text,
        elapsed - pledged,
        help.mt_parts,
    );
    drop(kannel);
    server.abort();
    let _ = server.await;
}
