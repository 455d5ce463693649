//! Pure engine tests over the real menus: no HTTP, no database. Effects and reads are
//! answered by a fake world, so every path can be walked in every language.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use hashar::{
    domain::{text::ScreenLimits, Language},
    engine::{
        drive::{
            drive, ready, Answers, DriveError, EffectNeed, ListNeed, ReadNeed, Scene, Transport,
        },
        Caller, Engine, ListItem, ListSource, MenuSet, Read, Reply, Vars,
    },
};
use rust_decimal::Decimal;

fn menus() -> MenuSet {
    MenuSet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("menus")).expect("menus load")
}

fn projects() -> Vec<ListItem> {
    let item = |id: &str, tg: &str, ru: &str, en: &str| ListItem {
        id: id.into(),
        labels: [tg.into(), ru.into(), en.into()],
        extra: Vars::from([("currency".to_owned(), "TJS".to_owned())]),
    };
    vec![
        item("11", "Пули пиёдагард", "Пешеходный мост", "Footbridge"),
        item("12", "Боми мактаб", "Крыша школы", "School roof"),
    ]
}

fn communities() -> Vec<ListItem> {
    (1..=15)
        .map(|i| ListItem {
            id: i.to_string(),
            labels: [
                format!("Деҳа {i}"),
                format!("Село {i}"),
                format!("Village {i}"),
            ],
            extra: Vars::new(),
        })
        .collect()
}

/// What a fake world answers to each action.
fn fake_effect(action: &str, vars: &Vars) -> Vars {
    let mut out = Vars::new();
    match action {
        // the fake household pledged 777 a few minutes ago
        "create_pledge" if vars.get("amount").map(String::as_str) == Some("777") => {
            out.insert("ask".into(), "1".into());
            out.insert("minutes".into(), "3".into());
        }
        "create_pledge" | "create_pledge_again" => {
            out.insert(
                "pledged".into(),
                vars.get("amount").cloned().unwrap_or_default(),
            );
            out.insert("received".into(), "1000".into());
            out.insert("matched".into(), "500".into());
            out.insert("matched_total".into(), "1500".into());
            out.insert("target".into(), "10000".into());
            out.insert("percent".into(), "15".into());
            out.insert("pledge_code".into(), "1234567".into());
        }
        // the fake coordinator's PIN is 2468; pledge 1234567 exists, with 600 due
        "verify_pin" if vars.get("pin").map(String::as_str) == Some("2468") => {
            out.insert("ok".into(), "1".into());
        }
        "verify_pin" => {
            out.insert("refused".into(), "refused.pin_wrong".into());
        }
        "find_pledge" if vars.get("pledge_code").map(String::as_str) == Some("1234567") => {
            out.insert("pledge_id".into(), "9".into());
            out.insert("pledge_amount".into(), "1000".into());
            out.insert("outstanding".into(), "600".into());
            out.insert("currency".into(), "TJS".into());
            for l in Language::ALL {
                out.insert(format!("project.{l}"), format!("Project {l}"));
            }
        }
        "find_pledge" => {
            out.insert("refused".into(), "refused.no_pledge".into());
        }
        "record_cash" => {
            out.insert("matched_total".into(), "1500".into());
            out.insert("target".into(), "10000".into());
            out.insert("percent".into(), "15".into());
        }
        "preview_notice" | "send_notice" => {
            out.insert("recipients".into(), "12".into());
            out.insert("segments".into(), "24".into());
            out.insert("when".into(), "01.12 10:00".into());
        }
        "next_tip" => {
            for l in Language::ALL {
                out.insert(format!("tip.{l}"), format!("tip text {l}"));
            }
        }
        _ => {}
    }
    out
}

/// The simulated transport: effects are recorded and answered by the fake world.
struct SimSteps<'a>(&'a mut Vec<(usize, String, Option<String>)>);

impl Transport for SimSteps<'_> {
    type Error = DriveError;

    async fn read(&mut self, need: ReadNeed<'_>) -> Result<Vars, DriveError> {
        Ok(if need.action == Read::JoinCode {
            Vars::from([("join_code".to_owned(), "482113".to_owned())])
        } else {
            fake_effect(
                "create_pledge",
                &Vars::from([("amount".to_owned(), "0".to_owned())]),
            )
        })
    }

    async fn effect(&mut self, need: EffectNeed<'_>) -> Result<Vars, DriveError> {
        self.0.push((
            need.step,
            need.action.name().to_owned(),
            need.arg.map(str::to_owned),
        ));
        Ok(fake_effect(need.action.name(), need.vars))
    }

    async fn list(&mut self, _: ListNeed) -> Result<Vec<ListItem>, DriveError> {
        Ok(Vec::new())
    }
}

struct Sim {
    menu: &'static str,
    set: MenuSet,
    caller: Caller,
    results: BTreeMap<usize, Vars>,
    effects: Vec<(usize, String, Option<String>)>,
    globals: Vars,
}

impl Sim {
    fn new(caller: Caller) -> Sim {
        Sim {
            menu: "household",
            set: menus(),
            caller,
            results: BTreeMap::new(),
            effects: Vec::new(),
            globals: Vars::from([
                ("hotline".to_owned(), "1313".to_owned()),
                ("hotline_line".to_owned(), "\nHotline: 1313".to_owned()),
                ("max".to_owned(), "100000".to_owned()),
                ("sms_number".to_owned(), "4274".to_owned()),
            ]),
        }
    }

    fn known(lang: Language) -> Sim {
        Sim::new(Caller {
            language: Some(lang),
            registered: true,
            pin_ok: false,
        })
    }

    /// Answers the history `inputs` (as one hop would), running effects as needed.
    fn hop(&mut self, inputs: &[&str]) -> Reply {
        let engine = Engine::new(&self.set, self.menu).expect("menu");
        let projects = projects();
        let communities = communities();
        let lists = move |s: ListSource| match s {
            ListSource::OpenProjects | ListSource::TotalProjects => projects.clone(),
            ListSource::Communities => communities.clone(),
            ListSource::CoordProjects => projects.clone(),
            ListSource::CoordCommunities => communities.clone(),
            // (the household's own pledges: their screens are tested in tests/my_pledges.rs)
            ListSource::MyPledges => Vec::new(),
            // (lazy: served by the transport; meetings are tested in tests/meetings.rs)
            ListSource::Meetings => Vec::new(),
        };
        let scene = Scene {
            caller: self.caller.clone(),
            lists: &lists,
            globals: &self.globals,
            default_language: Language::Tg,
            max_amount: Decimal::from(100_000),
            limits: ScreenLimits::default(),
        };
        let mut answers = Answers::with_results(std::mem::take(&mut self.results));
        let reply = ready(drive(
            &engine,
            &scene,
            0,
            inputs,
            &mut answers,
            10,
            &mut SimSteps(&mut self.effects),
        ));
        self.results = answers.results;
        reply.unwrap_or_else(|e| panic!("broken menu: {e}"))
    }

    /// Answers each prefix of `path` in turn, like a real session, returning the last screen.
    fn walk(&mut self, path: &[&str]) -> Reply {
        let mut last = self.hop(&[]);
        for i in 1..=path.len() {
            last = self.hop(&path[..i]);
        }
        last
    }
}

fn assert_screen_ok(reply: &Reply, context: &str) {
    let limits = ScreenLimits::default();
    assert!(!reply.text.trim().is_empty(), "{context}: empty screen");
    assert!(
        limits.fits(&reply.text),
        "{context}: screen too long: {:?}",
        reply.text
    );
    assert!(
        !reply.text.contains('{'),
        "{context}: unfilled placeholder in {:?}",
        reply.text
    );
    for line in reply.text.lines() {
        let looks_like_key = line.contains('.')
            && !line.contains(' ')
            && line
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_');
        assert!(
            !looks_like_key,
            "{context}: text key shown instead of a text: {line}"
        );
    }
}

/// Walks every path up to a depth from the main menu in every language, pressing every
/// option, back, home, more and a wrong input: every screen renders, fits and is filled.
#[test]
fn every_path_in_every_language_renders() {
    for lang in Language::ALL {
        let mut seen_screens = BTreeSet::new();
        let mut frontier: Vec<Vec<String>> = vec![Vec::new()];
        for _depth in 0..6 {
            let mut next = Vec::new();
            for path in &frontier {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                let mut sim = Sim::known(lang);
                let reply = sim.hop(&refs);
                assert_screen_ok(&reply, &format!("{lang} {path:?}"));
                if !seen_screens.insert(reply.text.clone()) || reply.end {
                    continue;
                }
                for input in ["1", "2", "3", "4", "5", "6", "0", "00", "99", "x", "500"] {
                    let mut p = path.clone();
                    p.push(input.to_owned());
                    next.push(p);
                }
            }
            frontier = next;
        }
        assert!(
            seen_screens.len() > 25,
            "{lang}: only {} distinct screens reached",
            seen_screens.len()
        );
    }
}

/// Issue 11, point 1: the pledge's last screen is one screen (it ends the session at once)
/// and leads with the project, the amount and the code, in every language.
#[test]
fn pledge_flow_in_each_language() {
    let want = [
        (
            Language::Tg,
            "Боми мактаб: ваъда 1500.50 TJS. Рамз 1234567. Пардохт — дар SMS",
        ),
        (
            Language::Ru,
            "Крыша школы: обещано 1500.50 TJS. Код 1234567. Оплата — в SMS",
        ),
        (
            Language::En,
            "School roof: pledged 1500.50 TJS. Code 1234567. To pay: see SMS",
        ),
    ];
    for (lang, screen) in want {
        let mut sim = Sim::known(lang);
        let confirm = sim.walk(&["1", "2", "1500,50"]);
        assert!(!confirm.end);
        assert!(confirm.text.contains("1500.50"), "{lang}: {}", confirm.text);
        assert!(
            confirm
                .text
                .contains(["Боми мактаб", "Крыша школы", "School roof"][lang as usize]),
            "{lang}: {}",
            confirm.text
        );
        let done = sim.hop(&["1", "2", "1500,50", "1"]);
        assert!(done.end, "{lang}: one screen, not paged: {:?}", done.text);
        assert_eq!(done.text, screen, "{lang}");
        assert_eq!(
            sim.effects,
            vec![(4, "create_pledge".to_owned(), None)],
            "{lang}: pledged exactly once"
        );
    }
}

/// Issue 11, point 1: the totals screen leads with "collected X of Y (Z %)" as its own first
/// line, whole on the first page, in every language; the details follow.
#[test]
fn totals_lead_with_the_collected_figure() {
    let want = [
        (Language::Tg, "Ҷамъ шуд 1500 аз 10000 TJS (15%)"),
        (Language::Ru, "Собрано 1500 из 10000 TJS (15%)"),
        (Language::En, "Collected 1500 of 10000 TJS (15%)"),
    ];
    for (lang, headline) in want {
        let mut sim = Sim::known(lang);
        let first = sim.walk(&["2", "2"]);
        assert_screen_ok(&first, "totals");
        assert_eq!(
            first.text.lines().next(),
            Some(headline),
            "{lang}: {}",
            first.text
        );
        // the details, on this page or the next ones: every figure is there
        let mut all = first.text.clone();
        let mut path = vec!["2", "2"];
        let mut page = first;
        while page.text.contains("\n99 ") {
            path.push("99");
            page = sim.hop(&path);
            all.push_str(&page.text);
            assert!(path.len() < 8, "{lang}: too many pages");
        }
        let project = ["Боми мактаб", "Крыша школы", "School roof"][lang as usize];
        for figure in [project, "1000", "500"] {
            assert!(all.contains(figure), "{lang}: {figure} in {all}");
        }
    }
}

/// Issue 11, point 1: "Invalid choice" on the last page of a long list never pushes an
/// option out of view.
#[test]
fn a_wrong_key_on_a_lists_last_page_keeps_every_option() {
    for lang in Language::ALL {
        let mut sim = Sim::new(Caller {
            language: Some(lang),
            registered: false,
            pin_ok: false,
        });
        let mut path: Vec<&str> = Vec::new();
        let mut page = sim.hop(&path);
        while page.text.contains("\n99 ") {
            path.push("99");
            page = sim.hop(&path);
            assert!(path.len() < 10, "{lang}: the list never ends");
        }
        assert!(!path.is_empty(), "{lang}: the village list pages");
        let options: Vec<String> = page
            .text
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .map(str::to_owned)
            .collect();
        assert!(options.len() > 1, "{lang}: {}", page.text);
        path.push("x");
        let wrong = sim.hop(&path);
        assert_screen_ok(&wrong, "a wrong key");
        for option in &options {
            assert!(
                wrong.text.lines().any(|l| l == option),
                "{lang}: {option:?} pushed out of view: {:?}",
                wrong.text
            );
        }
    }
}

#[test]
fn amount_errors_give_a_retry_screen_in_the_callers_language() {
    let cases = [
        (
            "abc",
            ["Танҳо рақам", "Введите только цифры", "Enter digits only"],
        ),
        ("-5", ["аз 0 зиёд", "больше 0", "more than 0"]),
        // "0" alone is the back key, so zero is typed as 0.00 to reach the check
        ("0.00", ["аз 0 зиёд", "больше 0", "more than 0"]),
        // (`1.234` is 1234 since issue 8: three digits after a separator group thousands)
        ("1.2345", ["2 рақам", "2 цифр", "2 digits"]),
        ("100001", ["100000", "100000", "100000"]),
    ];
    for (input, texts) in cases {
        for (i, lang) in Language::ALL.iter().enumerate() {
            let mut sim = Sim::known(*lang);
            let reply = sim.walk(&["1", "1", input]);
            assert!(!reply.end);
            assert!(
                reply.text.contains(texts[i]),
                "{lang} {input:?}: {}",
                reply.text
            );
            // still on the amount prompt: a good amount now goes on to the confirmation
            let ok = sim.hop(&["1", "1", input, "500"]);
            assert!(ok.text.contains("500"), "{lang}: {}", ok.text);
            assert!(sim.effects.is_empty(), "no effect from a wrong amount");
        }
    }
}

#[test]
fn ninety_nine_is_an_amount_on_a_one_page_input_screen() {
    let mut sim = Sim::known(Language::En);
    let confirm = sim.walk(&["1", "1", "99"]);
    assert!(
        confirm.text.starts_with("Pledge 99 TJS to Footbridge?"),
        "{}",
        confirm.text
    );
    // but on a one-page menu it is not an option
    assert!(sim.hop(&["99"]).text.starts_with("Invalid choice."));
}

#[test]
fn back_and_home_keys() {
    let mut sim = Sim::known(Language::En);
    let main = sim.hop(&[]);
    assert!(main.text.starts_with("Hashar"));
    let list = sim.hop(&["1"]);
    assert!(list.text.contains("Choose a project"));
    assert_eq!(sim.hop(&["1", "0"]).text, main.text, "0 goes back");
    assert_eq!(
        sim.hop(&["1", "1", "00"]).text,
        main.text,
        "00 goes to the main menu"
    );
    assert_eq!(
        sim.hop(&["1", "1", "0"]).text,
        list.text,
        "back from the amount prompt"
    );
    let invalid = sim.hop(&["0"]);
    assert!(
        invalid.text.starts_with("Invalid choice."),
        "{}",
        invalid.text
    );
    let invalid = sim.hop(&["9"]);
    assert!(
        invalid.text.starts_with("Invalid choice."),
        "{}",
        invalid.text
    );
    // declining a pledge goes back to the main menu and pledges nothing
    assert_eq!(sim.hop(&["1", "1", "500", "2"]).text, main.text);
    assert!(sim.effects.is_empty());
}

#[test]
fn long_lists_are_paged_and_numbered_across_pages() {
    let mut sim = Sim::new(Caller {
        language: Some(Language::Tg),
        registered: false,
        pin_ok: false,
    });
    let first = sim.hop(&[]);
    assert!(first.text.contains("1 Деҳа 1"), "{}", first.text);
    assert!(first.text.ends_with("99 Давом"), "{}", first.text);
    let mut path = vec!["99"];
    let mut page = sim.hop(&path);
    let mut seen: Vec<String> = first
        .text
        .lines()
        .filter(|l| l.contains(" Деҳа "))
        .map(str::to_owned)
        .collect();
    while page.text.contains("99 Давом") {
        seen.extend(
            page.text
                .lines()
                .filter(|l| l.contains(" Деҳа "))
                .map(str::to_owned),
        );
        path.push("99");
        page = sim.hop(&path);
    }
    seen.extend(
        page.text
            .lines()
            .filter(|l| l.contains(" Деҳа "))
            .map(str::to_owned),
    );
    let want: Vec<String> = (1..=15).map(|i| format!("{i} Деҳа {i}")).collect();
    assert_eq!(seen, want, "every village once, numbered across pages");
    // "99" on the last page is refused, "0" goes back a page
    path.push("99");
    assert!(sim.hop(&path).text.starts_with("Интихоби нодуруст."));
    // choosing number 14 from the last page registers in village 14
    let confirm = sim.hop(&["99", "99", "14"]);
    assert!(confirm.text.contains("Деҳа 14"), "{}", confirm.text);
}

#[test]
fn first_contact_asks_language_then_village() {
    let mut sim = Sim::new(Caller::default());
    let first = sim.hop(&[]);
    assert!(
        first.text.contains("1 Тоҷикӣ")
            && first.text.contains("2 Русский")
            && first.text.contains("3 English"),
        "{}",
        first.text
    );
    let village = sim.hop(&["2"]);
    assert!(
        village.text.contains("Выберите"),
        "Russian after choosing it: {}",
        village.text
    );
    let confirm = sim.hop(&["2", "3"]);
    assert!(confirm.text.contains("Село 3"), "{}", confirm.text);
    let main = sim.hop(&["2", "3", "1"]);
    assert!(main.text.starts_with("Хашар"), "{}", main.text);
    assert_eq!(
        sim.effects,
        vec![
            (1, "set_language".to_owned(), Some("ru".to_owned())),
            (3, "register".to_owned(), None)
        ]
    );
}

#[test]
fn tips_and_callback_are_effects_once_per_step() {
    let mut sim = Sim::known(Language::En);
    let tip = sim.walk(&["3"]);
    assert!(tip.text.contains("tip text en"), "{}", tip.text);
    let next = sim.hop(&["3", "1"]);
    assert!(next.text.contains("tip text en"));
    let done = sim.walk(&["4", "5", "1"]);
    assert!(
        done.end && done.text.contains("counsellor"),
        "{}",
        done.text
    );
    let actions: Vec<&str> = sim.effects.iter().map(|(_, a, _)| a.as_str()).collect();
    assert_eq!(actions, vec!["next_tip", "next_tip", "request_callback"]);
}

#[test]
fn input_after_the_end_starts_over() {
    let mut sim = Sim::known(Language::En);
    let reply = sim.walk(&["4", "5", "1", "1"]);
    assert!(reply.text.starts_with("Hashar"), "{}", reply.text);
}

/// The coordinator menu, every path in every language, behind its PIN.
#[test]
fn every_coordinator_path_in_every_language_renders() {
    for lang in Language::ALL {
        let mut seen = BTreeSet::new();
        let mut frontier: Vec<Vec<String>> = vec![Vec::new()];
        for _depth in 0..6 {
            let mut next = Vec::new();
            for path in &frontier {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                let mut sim = Sim::known(lang);
                sim.menu = "coordinator";
                let reply = sim.hop(&refs);
                assert_screen_ok(&reply, &format!("coordinator {lang} {path:?}"));
                if !seen.insert(reply.text.clone()) || reply.end {
                    continue;
                }
                for input in [
                    "1", "2", "0", "00", "99", "x", "2468", "1111", "1234567", "7654321", "300",
                    "700",
                ] {
                    let mut p = path.clone();
                    p.push(input.to_owned());
                    next.push(p);
                }
            }
            frontier = next;
        }
        assert!(
            seen.len() > 12,
            "{lang}: only {} coordinator screens",
            seen.len()
        );
    }
}

#[test]
fn the_coordinator_menu_needs_the_pin_first() {
    // one simulated session per history, as each would be a session of its own
    let hop = |inputs: &[&str]| {
        let mut sim = Sim::known(Language::En);
        sim.menu = "coordinator";
        sim.hop(inputs)
    };
    assert!(hop(&[])
        .text
        .starts_with("Hashar coordinator. Enter your PIN:"));
    assert!(hop(&["12"]).text.starts_with("The PIN is 4 to 6 digits."));
    assert!(hop(&["1111"]).text.starts_with("Wrong PIN."));
    assert!(
        hop(&["1111", "00"]).text.starts_with("Hashar coordinator"),
        "home is the PIN until it is right"
    );
    let main = hop(&["1111", "2468"]);
    assert!(
        main.text
            .starts_with("Coordinator\n1 Project totals\n2 Record cash"),
        "{}",
        main.text
    );
    let amount = hop(&["2468", "2", "1234567"]);
    assert!(
        amount.text.starts_with("Project en: pledged 1000, due 600"),
        "{}",
        amount.text
    );
    assert!(hop(&["2468", "2", "7654321"])
        .text
        .starts_with("No open pledge with that code"));
    let confirm = hop(&["2468", "2", "1234567", "300"]);
    assert!(confirm.text.starts_with("Record 300"), "{}", confirm.text);
    let confirm = hop(&["2468", "3", "1", "0112", "1000", "School"]);
    assert!(
        confirm
            .text
            .starts_with("01.12 10:00, School: 12 numbers, 24 SMS. Send?"),
        "{}",
        confirm.text
    );
    assert!(hop(&["2468", "3", "1", "3212"])
        .text
        .starts_with("Enter the day as DDMM"));
    assert!(hop(&["2468", "3", "1", "0112", "2500"])
        .text
        .starts_with("Enter the time as HHMM"));
    let done = hop(&["2468", "2", "1234567", "300", "1"]);
    assert!(
        done.end && done.text.starts_with("Recorded."),
        "{}",
        done.text
    );
}

/// Issue 8, point 9: a pledge that repeats one made minutes ago goes to the question
/// screen; "yes" runs `create_pledge_again` at the next step, "no" goes to the main menu.
#[test]
fn a_repeated_pledge_asks_before_pledging_again() {
    let want = [
        (Language::Tg, "3 дақиқа пеш 777 TJS", "Рамз 1234567"),
        (Language::Ru, "777 TJS 3 мин назад", "Код 1234567"),
        (
            Language::En,
            "You pledged 777 TJS to Footbridge 3 min ago",
            "Code 1234567",
        ),
    ];
    for (lang, question, thanks) in want {
        let mut sim = Sim::known(lang);
        let asked = sim.walk(&["1", "1", "777", "1"]);
        assert!(
            !asked.end && asked.text.contains(question),
            "{lang}: {}",
            asked.text
        );
        assert_screen_ok(&asked, "question");
        let done = sim.hop(&["1", "1", "777", "1", "1"]);
        assert!(done.text.contains(thanks), "{lang}: {}", done.text);
        assert_eq!(
            sim.effects,
            vec![
                (4, "create_pledge".to_owned(), None),
                (5, "create_pledge_again".to_owned(), None)
            ],
            "{lang}"
        );
        let no = sim.hop(&["1", "1", "777", "1", "2"]);
        assert!(!no.end && no.text.contains("1 "), "{lang}: {}", no.text);
        assert_eq!(sim.effects.len(), 2, "{lang}: no only navigates");
    }
}

/// Issue 11 point 6: a safe-migration topic records that it was read to the end
/// (`topic_read` with the topic) once, at the step of the hop that shows its last page;
/// the pages before it, and the first screen of a two-screen topic, record nothing.
#[test]
fn a_topic_records_topic_read_on_the_hop_of_its_last_page() {
    for lang in Language::ALL {
        for (start, topic) in [
            (vec!["4", "3"], "hiv"),
            (vec!["4", "2"], "trafficking"),
            (vec!["4", "1", "1"], "legal_stay"),
        ] {
            let mut sim = Sim::known(lang);
            let mut path = start.clone();
            let mut reply = sim.walk(&path);
            let pages = |r: &Reply| r.text.lines().any(|l| l.starts_with("99 "));
            while pages(&reply) {
                assert!(
                    sim.effects.iter().all(|(_, name, _)| name != "topic_read"),
                    "{lang} {path:?}: recorded before the last page"
                );
                path.push("99");
                reply = sim.hop(&path);
            }
            let reads: Vec<_> = sim
                .effects
                .iter()
                .filter(|(_, name, _)| name == "topic_read")
                .cloned()
                .collect();
            assert_eq!(
                reads,
                vec![(path.len(), "topic_read".to_owned(), Some(topic.to_owned()))],
                "{lang} {path:?}"
            );
            assert!(
                reply.text.contains("1313"),
                "{lang}: the hotline's line ends the topic: {:?}",
                reply.text
            );
        }
    }
}
