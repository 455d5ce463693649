//! The bodies of the fuzz targets, one plain function per target taking the fuzzer's bytes.
//!
//! The cargo-fuzz targets in `fuzz/fuzz_targets/` call these, and so does
//! `tests/fuzz_corpus.rs`, which replays every committed corpus file on the stable
//! toolchain as part of the ordinary test suite. Each function panics (through `assert!`)
//! when an invariant is broken, not only when the code under test crashes. See
//! `docs/FUZZING.md`.

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
    sync::OnceLock,
};

use rust_decimal::Decimal;

use crate::{
    channels::{
        africastalking::{self, AfricasTalking},
        infobip::Infobip,
        kannel::Kannel,
        twilio::{self, Twilio},
        DeliveryReport, DeliveryState, InboundSms, MessageRef, Provider, ReceivesSms,
        ReportsDelivery, Ussd, WebhookRequest,
    },
    domain::{
        money::{format_amount, parse_amount},
        phone::mask,
        text::ScreenLimits,
        Language, Phone,
    },
    engine::{
        check::{self, worst_case_values, MAX_COMMUNITY_NAME, MAX_PROJECT_NAME},
        drive::{
            self as driver, ready, Answers, DriveError, EffectNeed, ListNeed, ReadNeed, Scene,
            Transport,
        },
        menu::{parse_menu, Locale},
        Action, Caller, Engine, ListItem, ListSource, MenuSet, Reply, Vars, MAX_NEEDS,
    },
    keywords::{self, Command},
};

/// Inputs longer than this are not looked at: every parser here sits behind a body or field
/// limit far below it, and long inputs only slow the fuzzer down.
const MAX_INPUT: usize = 16 * 1024;

fn text(data: &[u8]) -> Option<&str> {
    if data.len() > MAX_INPUT {
        return None;
    }
    std::str::from_utf8(data).ok()
}

// ---------------------------------------------------------------------------------------
// Phone numbers

/// `Phone::parse` never panics; what it accepts is E.164 as the database stores it (`+`, a
/// non-zero digit, 7 to 15 digits in all), parses again to itself, and is masked in logs.
pub fn phone(data: &[u8]) {
    let Some(raw) = text(data) else { return };
    let masked = mask(raw);
    assert_eq!(masked.chars().count(), raw.chars().count());
    let Ok(phone) = Phone::parse(raw) else { return };
    let e164 = phone.as_str();
    let digits = &e164[1..];
    assert!(e164.starts_with('+'), "{e164:?} is not E.164");
    assert!(
        (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()),
        "{e164:?} is not E.164"
    );
    assert!(!digits.starts_with('0'), "{e164:?} has no country code");
    assert_eq!(
        Phone::parse(e164).as_ref(),
        Ok(&phone),
        "{e164:?} does not parse to itself"
    );
    // Without the `+` it is still the same number when it is longer than a Tajik national
    // number (a person's 9 digits are read as Tajik: see docs/FUZZING.md, findings).
    if digits.len() > 9 {
        assert_eq!(Phone::parse(digits).as_ref(), Ok(&phone), "{digits:?}");
    }
    // Read as international (Infobip's senders), it always is.
    assert_eq!(
        Phone::parse_international(digits).as_ref(),
        Ok(&phone),
        "{digits:?}"
    );
    let shown = phone.to_string();
    assert!(!shown.contains(digits), "a full number reached Display");
    assert!(
        !format!("{phone:?}").contains(digits),
        "a full number reached Debug"
    );
}

// ---------------------------------------------------------------------------------------
// Amounts

/// The limits amounts are checked against: a pledge maximum and the keyword maximum.
const MAXES: [i64; 2] = [100_000, 1_000_000_000];

/// `parse_amount` never panics; what it accepts is positive, within the maximum, has at most
/// two decimals, and its screen form (`format_amount`) reads back as the same value. Any
/// decimal (the first 16 bytes as a `Decimal`) formats without panicking, and what it
/// formats to reads back as its rounding to cents.
pub fn amount(data: &[u8]) {
    if let Some(raw) = text(data) {
        for max in MAXES.map(Decimal::from) {
            let Ok(value) = parse_amount(raw, max) else {
                continue;
            };
            assert!(value > Decimal::ZERO, "{raw:?} gave {value}");
            assert!(value <= max, "{raw:?} gave {value} above {max}");
            assert!(value.scale() <= 2, "{raw:?} gave {value}");
            let shown = format_amount(value);
            assert_eq!(
                parse_amount(&shown, max),
                Ok(value),
                "{raw:?} gave {value}, shown as {shown:?}"
            );
        }
    }
    if let Some(bytes) = data.get(..16) {
        let mut raw = [0u8; 16];
        raw.copy_from_slice(bytes);
        let value = Decimal::deserialize(raw);
        let shown = format_amount(value);
        let cents =
            value.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        if cents > Decimal::ZERO {
            // Never `1e3` or `1 500`: always digits and at most one point.
            assert!(
                shown.chars().all(|c| c.is_ascii_digit() || c == '.'),
                "{value} shown as {shown:?}"
            );
            let max = Decimal::MAX;
            match parse_amount(&shown, max) {
                Ok(back) => assert_eq!(back, cents.normalize(), "{value} shown as {shown:?}"),
                // More than 15 whole digits is refused as too large, by design.
                Err(e) => assert!(
                    cents.trunc().to_string().len() > 15,
                    "{value} shown as {shown:?} does not read back: {e}"
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Keywords

/// `keywords::parse` never panics; a pledge's amount is positive, within the keyword maximum
/// and in cents; a JOIN code is 4-6 digits; surrounding blanks change nothing.
pub fn keywords(data: &[u8]) {
    let Some(raw) = text(data) else { return };
    let parsed = keywords::parse(raw);
    assert_eq!(
        keywords::parse(&format!(" \t{raw}\n ")),
        parsed,
        "blanks around {raw:?} changed the command"
    );
    match parsed {
        Some(Ok(Command::Pledge {
            amount, project, ..
        })) => {
            assert!(amount > Decimal::ZERO && amount <= Decimal::from(MAXES[1]));
            assert!(amount.scale() <= 2);
            if let Some(p) = project {
                assert!(!p.trim().is_empty() && p == p.trim(), "project {p:?}");
            }
        }
        Some(Ok(Command::Join(code))) => {
            assert!((4..=6).contains(&code.len()) && code.chars().all(|c| c.is_ascii_digit()));
        }
        Some(Ok(Command::Total { project: Some(p) })) => {
            assert!(
                !p.is_empty() && !p.contains(char::is_whitespace),
                "project {p:?}"
            );
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Providers

/// The longest field an inbound form may carry that the fuzzer cares about.
fn form(data: &[u8]) -> Option<Vec<(String, String)>> {
    if data.len() > MAX_INPUT {
        return None;
    }
    Some(
        url::form_urlencoded::parse(data)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

fn check_sms(sms: &InboundSms, provider: &str) {
    assert_eq!(sms.provider, provider);
    assert!(!sms.provider_msg_id.trim().is_empty(), "{sms:?}");
    assert!(!sms.from.trim().is_empty(), "{sms:?}");
}

fn check_report(report: &DeliveryReport, provider: &str) {
    assert_eq!(report.provider, provider);
    if let MessageRef::Provider(id) = &report.message {
        assert!(!id.trim().is_empty(), "{report:?}");
    }
    assert!(!report.provider_status.trim().is_empty(), "{report:?}");
    if let Some(reason) = &report.reason {
        assert!(!reason.is_empty(), "{report:?}");
    }
}

/// Africa's Talking: the bytes as a form body, through the USSD callback, the inbound SMS
/// and the delivery report parsers.
pub fn africastalking(data: &[u8]) {
    let Some(pairs) = form(data) else { return };
    let first = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let ussd = africastalking::UssdForm {
        session_id: first("sessionId"),
        service_code: first("serviceCode"),
        phone_number: first("phoneNumber"),
        network_code: first("networkCode"),
        text: first("text"),
    };
    if let Ok(hop) = AfricasTalking::parse_ussd(ussd) {
        assert!(!hop.session_id.trim().is_empty() && hop.session_id.len() <= 200);
        assert!(hop.text.len() <= 2_000);
        assert_eq!(Phone::parse(hop.phone.as_str()).as_ref(), Ok(&hop.phone));
    }
    let request = WebhookRequest::with_body(data);
    if let Ok(sms) = single(AfricasTalking::parse_sms(&request)) {
        check_sms(&sms, AfricasTalking::NAME);
    }
    if let Ok(report) = single(AfricasTalking::parse_delivery(&request)) {
        check_report(&report, AfricasTalking::NAME);
        assert!(matches!(report.message, MessageRef::Provider(_)));
    }
}

/// The one message of a provider that sends one per request, without its stored form.
fn single<T, E>(parsed: Result<Vec<(T, serde_json::Value)>, E>) -> Result<T, E> {
    parsed.map(|messages| {
        assert_eq!(messages.len(), 1, "one message per request");
        let mut messages = messages.into_iter().map(|(m, _)| m);
        messages
            .next()
            .unwrap_or_else(|| unreachable!("one message"))
    })
}

/// Twilio: the bytes as a form body, through the inbound SMS and status callback parsers.
pub fn twilio(data: &[u8]) {
    let Some(pairs) = form(data) else { return };
    let request = WebhookRequest::with_body(data);
    if let Ok(sms) = single(Twilio::parse_sms(&request)) {
        check_sms(&sms, Twilio::NAME);
    }
    if let Ok(report) = single(Twilio::parse_delivery(&request)) {
        check_report(&report, Twilio::NAME);
    }
    // A reply to a text is well-formed XML whatever the text holds.
    if let Some((_, body)) = pairs.first() {
        let xml = twilio::twiml_message(body);
        let inner = xml
            .strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>"#)
            .and_then(|x| x.strip_suffix("</Message></Response>"));
        assert!(
            inner.is_some_and(|i| !i.contains(['<', '>', '"'])),
            "unescaped TwiML: {xml:?}"
        );
    }
}

/// Infobip: the bytes as a JSON body, through the inbound SMS and delivery report parsers.
pub fn infobip(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let request = WebhookRequest::with_body(data);
    if let Ok(messages) = Infobip::parse_sms(&request) {
        for (sms, _) in &messages {
            check_sms(sms, Infobip::NAME);
        }
    }
    if let Ok(reports) = Infobip::parse_delivery(&request) {
        for (report, _) in &reports {
            check_report(report, Infobip::NAME);
        }
    }
}

/// Kannel: the bytes as a raw query string, through the get-url (inbound SMS) and dlr-url
/// (delivery report) parsers.
pub fn kannel(data: &[u8]) {
    let Some(query) = text(data) else { return };
    let request = WebhookRequest::with_query(query);
    if let Ok(sms) = single(Kannel::parse_sms(&request)) {
        check_sms(&sms, Kannel::NAME);
        assert_eq!(sms.from, sms.from.trim());
    }
    if let Ok(report) = single(Kannel::parse_delivery(&request)) {
        check_report(&report, Kannel::NAME);
        assert!(matches!(report.message, MessageRef::Ours(_)));
        if report.state != DeliveryState::Failed {
            assert_eq!(report.reason, None);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Menus and the engine

const LOCALES: [(Language, &str); 3] = [
    (Language::Tg, include_str!("../menus/locales/tg.toml")),
    (Language::Ru, include_str!("../menus/locales/ru.toml")),
    (Language::En, include_str!("../menus/locales/en.toml")),
];
const MENUS: [&str; 2] = [
    include_str!("../menus/household.toml"),
    include_str!("../menus/coordinator.toml"),
];

fn locales() -> HashMap<Language, Locale> {
    LOCALES
        .iter()
        .filter_map(|(lang, source)| Locale::parse(source).ok().map(|l| (*lang, l)))
        .collect()
}

/// The shipped menus and texts, loaded once.
fn shipped() -> &'static MenuSet {
    static SET: OnceLock<MenuSet> = OnceLock::new();
    SET.get_or_init(|| {
        let menus = MENUS
            .iter()
            .filter_map(|source| parse_menu(Path::new("shipped.toml"), source).ok())
            .map(|def| (def.id.clone(), def))
            .collect();
        MenuSet {
            menus,
            locales: locales(),
        }
    })
}

/// `check::worst_case_values()`, built once.
fn widest() -> &'static Vars {
    static VARS: OnceLock<Vars> = OnceLock::new();
    VARS.get_or_init(worst_case_values)
}

/// Lists as long and as wide as the database allows (what `menus check` assumes).
fn wide_lists(source: ListSource) -> Vec<ListItem> {
    let n = match source {
        ListSource::Communities | ListSource::CoordCommunities => MAX_COMMUNITY_NAME,
        ListSource::OpenProjects | ListSource::CoordProjects => MAX_PROJECT_NAME,
        ListSource::MyPledges => check::MAX_OWN_PLEDGE,
        ListSource::Meetings => check::MAX_MEETING,
        ListSource::TotalProjects => MAX_PROJECT_NAME + check::MAX_STATE_MARK + 3,
    };
    (1..=15)
        .map(|i| ListItem {
            id: i.to_string(),
            labels: ["Ж".repeat(n), "Ж".repeat(n), "W".repeat(n)],
            extra: Vars::from([("currency".to_owned(), "TJS".to_owned())]),
        })
        .collect()
}

/// What the fake world answers to an effect (or, with `None`, a read): the widest values
/// `menus check` knows, and a refusal for a wrong PIN or an unknown pledge code.
fn fake_effect(action: Option<Action>, vars: &Vars) -> Vars {
    let mut out: Vars = widest()
        .iter()
        .filter(|(k, _)| !k.contains('.'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match action {
        Some(Action::VerifyPin) if vars.get("pin").map(String::as_str) == Some("246810") => {
            out.insert("ok".into(), "1".into());
        }
        Some(Action::VerifyPin) => {
            out.insert("refused".into(), "refused.pin_wrong".into());
        }
        Some(Action::FindPledge)
            if vars.get("pledge_code").map(String::as_str) != Some("1234567") =>
        {
            out.insert("refused".into(), "refused.no_pledge".into());
        }
        _ => {}
    }
    out
}

/// Replays `inputs` against `menu` as the USSD handler would, answering every need with the
/// fake world, and returns the screen. Panics on anything a checked menu must never do:
/// break, need more than [`MAX_NEEDS`] answers per input, or show a screen that is empty or
/// does not fit `limits`.
fn drive(set: &MenuSet, menu: &str, caller: &Caller, inputs: &[&str], lang: Language) -> Reply {
    let limits = ScreenLimits::default();
    let Ok(engine) = Engine::new(set, menu) else {
        panic!("menu {menu} missing");
    };
    let globals = widest();
    let lists = wide_lists;
    let scene = Scene {
        caller: caller.clone(),
        lists: &lists,
        globals,
        default_language: lang,
        max_amount: Decimal::from(MAXES[0]),
        limits,
    };
    let mut answers = Answers::default();
    let reply = ready(driver::drive(
        &engine,
        &scene,
        0,
        inputs,
        &mut answers,
        MAX_NEEDS * (inputs.len() + 1),
        &mut Fakes {
            effects: BTreeSet::new(),
            reads: BTreeSet::new(),
        },
    ))
    .unwrap_or_else(|e| panic!("menu {menu} after {inputs:?}: {e}"));
    assert!(
        !reply.text.trim().is_empty(),
        "empty screen after {inputs:?}"
    );
    assert!(
        limits.fits(&reply.text),
        "screen after {inputs:?} does not fit: {:?}",
        reply.text
    );
    // The same history gives the same screen.
    assert_eq!(
        engine
            .replay(
                &scene.world(&answers.results, &answers.reads, &answers.lists),
                0,
                inputs
            )
            .as_ref(),
        Ok(&reply)
    );
    reply
}

/// The fuzz targets' transport: fake results, and a panic when the driver asks for the
/// same effect or read twice.
struct Fakes {
    effects: BTreeSet<usize>,
    reads: BTreeSet<String>,
}

impl Transport for Fakes {
    type Error = DriveError;

    async fn read(&mut self, need: ReadNeed<'_>) -> Result<Vars, DriveError> {
        assert!(
            self.reads.insert(need.key.to_owned()),
            "read {} asked for twice",
            need.key
        );
        Ok(fake_effect(None, need.vars))
    }

    async fn effect(&mut self, need: EffectNeed<'_>) -> Result<Vars, DriveError> {
        assert!(
            self.effects.insert(need.step),
            "effect at step {} asked for twice",
            need.step
        );
        Ok(fake_effect(Some(need.action), need.vars))
    }

    async fn list(&mut self, need: ListNeed) -> Result<Vec<ListItem>, DriveError> {
        Ok(wide_lists(need.source))
    }
}

/// A caller from flag bits: language known or not, registered, PIN entered.
fn caller_with(flags: u8, lang: Language) -> Caller {
    Caller {
        language: (flags & 2 != 0).then_some(lang),
        registered: flags & 4 != 0,
        pin_ok: flags & 8 != 0,
    }
}

/// A menu, a caller and a language from one byte.
fn caller_from(byte: u8) -> (&'static str, Caller, Language) {
    let lang = Language::ALL[usize::from(byte >> 4) % Language::ALL.len()];
    let menu = if byte & 1 == 0 {
        "household"
    } else {
        "coordinator"
    };
    (menu, caller_with(byte, lang), lang)
}

/// The longest history replayed; a real one has a few dozen characters (and AT caps it at
/// 2,000).
const MAX_TOKENS: usize = 40;

/// Engine replay: the first byte picks the menu and the caller, the rest is a USSD text
/// history (`1*2*500`). Every prefix of the history is replayed, as a session's hops would
/// be; none may break the shipped menus or show a screen over the limits, and an END
/// screen's next input starts over.
pub fn engine(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Some(history) = text(rest) else { return };
    if history.len() > 2_000 {
        return;
    }
    let tokens: Vec<&str> = if history.is_empty() {
        Vec::new()
    } else {
        history.split('*').collect()
    };
    if tokens.len() > MAX_TOKENS {
        return;
    }
    let (menu, caller, lang) = caller_from(first);
    let set = shipped();
    for i in 0..=tokens.len() {
        drive(set, menu, &caller, &tokens[..i], lang);
    }
}

/// Menu loader and checker: the bytes as a menu file. Loading and `menus check` never
/// panic; a menu that passes the check (with the shipped texts) never breaks and never
/// shows a screen over the limits on a few fixed walks.
pub fn menu(data: &[u8]) {
    let Some(source) = text(data) else { return };
    if source.len() > 8 * 1024 {
        return;
    }
    let Ok(def) = parse_menu(Path::new("fuzz.toml"), source) else {
        return;
    };
    if def.screens.len() > 40 {
        return;
    }
    let id = def.id.clone();
    let mut set = shipped().clone();
    set.menus.insert(id.clone(), def);
    let errors = check::check(&set, ScreenLimits::default());
    if !errors.is_empty() {
        return;
    }
    const WALKS: [&[&str]; 8] = [
        &["1", "1", "1", "1", "1", "1"],
        &["2", "1", "2", "1", "2"],
        &["1", "500", "1", "0", "0", "00"],
        &["3", "99", "99", "0", "1", "1"],
        &["x", "1", "1234", "246810", "1234567", "1"],
        &["4", "0112", "1000", "School", "1", "1"],
        &["5", "1", "2", "99", "3", "1"],
        &["1", "2", "3", "4", "5", "6"],
    ];
    for lang in Language::ALL {
        for flags in [0u8, 14] {
            let caller = caller_with(flags, lang);
            for walk in WALKS {
                for i in 0..=walk.len() {
                    drive(&set, &id, &caller, &walk[..i], lang);
                }
            }
        }
    }
}
