//! `hashar menus check`: everything that can be wrong with a menu, found before a caller
//! finds it. The server runs the same check at start and refuses to start on any error.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use rust_decimal::Decimal;

use super::{
    drive::{drive, ready, Answers, DriveError, EffectNeed, ListNeed, ReadNeed, Scene, Transport},
    menu::{placeholders, InputKind, MenuDef, MenuSet, ScreenDef},
    Action, Caller, Condition, Data, Engine, ListItem, ListSource, Reply, Vars, MAX_NEEDS,
};
use crate::domain::{text::ScreenLimits, Language};

/// Longest project name, community name and tip that the database accepts (see the check
/// constraints in `migrations/`); screens are checked with these.
pub const MAX_PROJECT_NAME: usize = 24;
pub const MAX_COMMUNITY_NAME: usize = 20;
pub const MAX_TIP: usize = 300;
/// Longest entry of the household's pledges (`actions::my_pledges::items`): a code, a
/// project name, an amount (`99999999.99`), a currency and a mark of up to 9 letters.
pub const MAX_OWN_PLEDGE: usize = 7 + 1 + MAX_PROJECT_NAME + 1 + 11 + 1 + 3 + 1 + 9;
/// Longest entry of the upcoming meetings (`actions::meetings::items`): a date and time
/// (`12 Dec 14:00`), a place of up to 24 characters and a mark of up to 6 letters.
pub const MAX_MEETING: usize = 12 + 1 + 24 + 1 + 6;
/// Longest mark of a closed project's state on the phone (`total.mark.*`, checked here):
/// the totals list shows `name (mark)`, and the totals screen the name so chosen.
pub const MAX_STATE_MARK: usize = 12;
/// The marks of a project's state (`crate::news::PhoneState::mark_key`).
const STATE_MARKS: [&str; 2] = ["total.mark.completed", "total.mark.closed"];

/// Texts the engine itself uses, whatever the menu.
const ENGINE_KEYS: &[&str] = &[
    "nav.back",
    "nav.more",
    "nav.yes",
    "nav.no",
    "nav.invalid",
    "nav.busy",
    "amount.not_a_number",
    "amount.not_positive",
    "amount.too_many_decimals",
    "amount.too_large",
    "input.pin",
    "input.code",
    "input.date",
    "input.time",
    "input.text",
];

/// Texts the service sends outside any menu, with the placeholders it fills in (each must
/// be used) and the widest value of each: every language must have them, use no other
/// placeholder, and fit [`SERVICE_TEXT_SEGMENTS`] SMS with the widest values (a longer
/// text would be cut at the end).
pub const SERVICE_TEXTS: &[(&str, &[(&str, &str)])] = &[
    (
        // a project's target reached, told to its pledgers once (src/news.rs)
        "sms.target_reached",
        &[
            ("project", WIDEST_PROJECT),
            ("matched_total", "99999999.99"),
            ("target", "99999999.99"),
            ("currency", "TJS"),
        ],
    ),
    (
        // the code that links a number to a household (src/api/households.rs)
        "sms.link_code",
        &[("code", "999999"), ("community", WIDEST_COMMUNITY)],
    ),
    (
        // a pledge made on the menus, told by SMS at once (src/actions/pledges.rs)
        PLEDGE_SMS,
        &[
            ("pledge_code", "9999999"),
            ("amount", "99999999.99"),
            ("currency", "TJS"),
            ("project", WIDEST_PROJECT),
        ],
    ),
    (
        // a counsellor took the household's callback request (src/service/callbacks.rs)
        "sms.callback_taken",
        &[("number", "+992000000000000")],
    ),
    (
        // the reminder the day before a meeting, to a household that said yes (src/meetings.rs)
        "sms.meeting_reminder",
        &[("when", "31 Dec 23:59"), ("place", WIDEST_PLACE)],
    ),
    (
        // the hotline's line under a safe-migration topic, when HASHAR_HOTLINE is set
        // (src/app.rs; fits a USSD page: checked with the topics)
        HOTLINE_LINE,
        &[("hotline", "+992 00 000 00 00, +7 000 000 00 00")],
    ),
];
/// A meeting's place of [`crate::store::meetings::MAX_PLACE`] Cyrillic letters.
const WIDEST_PLACE: &str = "ЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖ";
/// The line that ends each safe-migration topic with the hotline (`{hotline_line}`, filled
/// in `app::AppState`), left out when `HASHAR_HOTLINE` is not set.
pub const HOTLINE_LINE: &str = "migration.hotline_line";
/// The SMS that tells a household its pledge: code, amount, project, how to pay.
pub const PLEDGE_SMS: &str = "sms.pledge_code";
/// A project name of [`MAX_PROJECT_NAME`] Cyrillic letters.
const WIDEST_PROJECT: &str = "ЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖ";
/// A community name of [`MAX_COMMUNITY_NAME`] Cyrillic letters.
const WIDEST_COMMUNITY: &str = "ЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖ";
/// SMS segments a service text may take (the default `HASHAR_SMS_MAX_SEGMENTS`).
pub const SERVICE_TEXT_SEGMENTS: usize = 3;

/// Every placeholder a text may use, with the widest value it can take.
pub fn worst_case_values() -> Vars {
    debug_assert_eq!(WIDEST_COMMUNITY.chars().count(), MAX_COMMUNITY_NAME);
    debug_assert_eq!(WIDEST_PROJECT.chars().count(), MAX_PROJECT_NAME);
    let wide = |n: usize| "Ж".repeat(n);
    let mut v = Vars::new();
    for lang in Language::ALL {
        v.insert(format!("project.{lang}"), wide(MAX_PROJECT_NAME));
        v.insert(format!("community.{lang}"), wide(MAX_COMMUNITY_NAME));
        v.insert(format!("status.{lang}"), wide(12));
        // a meeting's topics (actions::meetings::items)
        v.insert(format!("about.{lang}"), wide(110));
    }
    for money in [
        "amount",
        "pledged",
        "received",
        "matched",
        "matched_total",
        "target",
    ] {
        v.insert(money.into(), "99999999.99".into());
    }
    v.insert("currency".into(), "TJS".into());
    v.insert("percent".into(), "100.0".into());
    v.insert("max".into(), "100000".into());
    v.insert("tip".into(), wide(MAX_TIP));
    v.insert(
        "hotline".into(),
        "+992 00 000 00 00, +7 000 000 00 00".into(),
    );
    // the hotline's line at the end of a safe-migration topic (src/app.rs): empty without
    // HASHAR_HOTLINE
    v.insert(
        "hotline_line".into(),
        format!("\n{}: +992 00 000 00 00, +7 000 000 00 00", wide(16)),
    );
    v.insert("join_code".into(), "999999".into());
    v.insert("sms_number".into(), "+992 00 000 00 00".into());
    v.insert("pledge_code".into(), "9999999".into());
    v.insert("date".into(), "31.12".into());
    v.insert("time".into(), "23:59".into());
    v.insert("place".into(), "Ж".repeat(40));
    v.insert("recipients".into(), "99999".into());
    v.insert("segments".into(), "999999".into());
    v.insert("when".into(), "31.12 23:59".into());
    v.insert("cash_amount".into(), "99999999.99".into());
    v.insert("pledge_amount".into(), "99999999.99".into());
    v.insert("outstanding".into(), "99999999.99".into());
    v.insert("minutes".into(), "10".into());
    v
}

fn allowed_placeholder(name: &str, known: &Vars) -> bool {
    known.contains_key(name) || known.contains_key(&format!("{name}.en"))
}

/// Checks every menu of the set; returns all problems, one line each, in a stable order.
pub fn check(set: &MenuSet, limits: ScreenLimits) -> Vec<String> {
    let mut errors = Vec::new();
    let known = worst_case_values();
    for lang in Language::ALL {
        for key in ENGINE_KEYS {
            if set.locales.get(&lang).and_then(|l| l.get(key)).is_none() {
                errors.push(format!("locale {lang}: text {key:?} is missing"));
            }
        }
    }
    for (key, vars) in SERVICE_TEXTS {
        for lang in Language::ALL {
            let Some(text) = set.locales.get(&lang).and_then(|l| l.get(key)) else {
                errors.push(format!("locale {lang}: text {key:?} is missing"));
                continue;
            };
            let used = placeholders(text);
            for p in &used {
                if !vars.iter().any(|(name, _)| name == p) {
                    errors.push(format!(
                        "locale {lang}: text {key:?} uses unknown placeholder {{{p}}}"
                    ));
                }
            }
            for (name, _) in *vars {
                if !used.iter().any(|p| p == name) {
                    errors.push(format!("locale {lang}: text {key:?} must use {{{name}}}"));
                }
            }
            let widest = super::menu::fill(text, |n| {
                vars.iter()
                    .find(|(name, _)| *name == n)
                    .map(|(_, v)| (*v).to_owned())
            });
            let segments = crate::domain::TextMeasure::of(&widest).sms_segments();
            if segments > SERVICE_TEXT_SEGMENTS {
                errors.push(format!(
                    "locale {lang}: text {key:?} takes {segments} SMS with the widest values, more than {SERVICE_TEXT_SEGMENTS}"
                ));
            }
        }
    }
    for lang in Language::ALL {
        for key in STATE_MARKS {
            match set.locales.get(&lang).and_then(|l| l.get(key)) {
                None => errors.push(format!("locale {lang}: text {key:?} is missing")),
                Some(t) if t.chars().count() > MAX_STATE_MARK => errors.push(format!(
                    "locale {lang}: text {key:?} is longer than {MAX_STATE_MARK} characters"
                )),
                Some(_) => {}
            }
        }
    }
    for menu in set.menus.values() {
        check_menu(set, menu, &known, limits, &mut errors);
    }
    errors
}

fn check_menu(
    set: &MenuSet,
    menu: &MenuDef,
    known: &Vars,
    limits: ScreenLimits,
    errors: &mut Vec<String>,
) {
    let id = &menu.id;
    let mut structural = false;
    let mut err = |e: String| errors.push(e);
    if !menu.screens.contains_key(&menu.start) {
        err(format!(
            "menu {id}: start screen {:?} does not exist",
            menu.start
        ));
        structural = true;
    }
    for guard in &menu.entry {
        if !menu.screens.contains_key(&guard.screen) {
            err(format!(
                "menu {id}: entry: screen {:?} does not exist",
                guard.screen
            ));
            structural = true;
        }
    }
    let stored: BTreeSet<&str> = menu
        .screens
        .values()
        .filter_map(|s| match s {
            ScreenDef::List { store, .. } | ScreenDef::Input { store, .. } => Some(store.as_str()),
            _ => None,
        })
        .collect();
    // Screens entered at the step of an effect (see `at_end`).
    let entered_by_effect: BTreeSet<&str> = menu
        .screens
        .values()
        .flat_map(|s| {
            let mut out: Vec<&str> = s
                .options()
                .iter()
                .filter(|o| o.action.is_some())
                .filter_map(|o| o.next.as_deref())
                .collect();
            match s {
                ScreenDef::Confirm { next, ask, .. } => {
                    out.push(next);
                    out.extend(ask.as_deref());
                }
                ScreenDef::Input {
                    next,
                    action: Some(_),
                    ..
                } => out.push(next),
                _ => {}
            }
            out
        })
        .collect();
    for (name, screen) in &menu.screens {
        for target in screen.targets() {
            if !menu.screens.contains_key(target) {
                err(format!(
                    "menu {id}, screen {name}: next screen {target:?} does not exist"
                ));
                structural = true;
            }
        }
        // The effects this screen runs (with their `arg`) and the reads it shows. Names a
        // build does not implement do not get this far: the menu fails to load.
        let mut effects: Vec<(Action, Option<&str>)> = screen
            .options()
            .iter()
            .filter_map(|o| o.action.map(|a| (a, o.arg.as_deref())))
            .collect();
        for (action, _) in &effects {
            if action.may_ask() {
                err(format!("menu {id}, screen {name}: {} may ask first, so only a confirm screen with `ask` can run it", action.name()));
                structural = true;
            }
        }
        let mut read = None;
        match screen {
            ScreenDef::Confirm { action, ask, .. } => {
                effects.push((*action, None));
                if action.may_ask() && ask.is_none() {
                    err(format!("menu {id}, screen {name}: {} may ask first (a repeated pledge), so its screen needs `ask`", action.name()));
                    structural = true;
                }
            }
            ScreenDef::Input {
                action: Some(action),
                ..
            } => {
                if action.may_ask() {
                    err(format!("menu {id}, screen {name}: {} may ask first, so only a confirm screen with `ask` can run it", action.name()));
                    structural = true;
                }
                effects.push((*action, None));
            }
            ScreenDef::Info {
                data: Some(Data::Effect(action)),
                ..
            } => effects.push((*action, None)),
            ScreenDef::Info {
                data: Some(Data::Read(r)),
                ..
            } => read = Some(*r),
            _ => {}
        }
        if let ScreenDef::Info {
            at_end: Some(end),
            data,
            ..
        } = screen
        {
            // An effect's result is kept by step: two effects of one hop would share it.
            if matches!(data, Some(Data::Effect(_))) || entered_by_effect.contains(name.as_str()) {
                err(format!("menu {id}, screen {name}: at_end runs an effect when the screen is entered, so it cannot be entered by another effect (an option's action, a confirm, an input's action or its own data)"));
                structural = true;
            }
            if end.action.may_ask() {
                err(format!("menu {id}, screen {name}: {} may ask first, so only a confirm screen with `ask` can run it", end.action.name()));
                structural = true;
            }
            effects.push((end.action, end.arg.as_deref()));
        }
        let used = effects
            .into_iter()
            .map(|(action, arg)| (action.name(), action.needs(), Some((action, arg))))
            .chain(read.map(|r| (r.name(), r.needs(), None)));
        for (action, vars, effect) in used {
            if let Some((Action::TopicRead, arg)) = effect {
                if !arg.is_some_and(crate::domain::outreach::is_topic) {
                    err(format!(
                        "menu {id}, screen {name}: topic_read needs arg {}",
                        crate::domain::outreach::TOPICS.join(", ")
                    ));
                    structural = true;
                }
            }
            if let Some((Action::SetLanguage, arg)) = effect {
                if arg.and_then(|a| a.parse::<Language>().ok()).is_none() {
                    err(format!(
                        "menu {id}, screen {name}: set_language needs arg tg, ru or en"
                    ));
                    structural = true;
                }
            }
            if let Some((Action::Rsvp, arg)) = effect {
                if !matches!(arg, Some("yes" | "no")) {
                    err(format!(
                        "menu {id}, screen {name}: rsvp needs arg yes or no"
                    ));
                    structural = true;
                }
            }
            for var in vars {
                if !stored.contains(var) {
                    err(format!("menu {id}, screen {name}: action {action:?} needs {var:?}, which no screen stores"));
                    structural = true;
                }
            }
        }
        for key in screen.text_keys() {
            for lang in Language::ALL {
                match set.locales.get(&lang).and_then(|l| l.get(key)) {
                    None => {
                        err(format!(
                            "menu {id}, screen {name}: text {key:?} is missing in {lang}"
                        ));
                        structural = true;
                    }
                    Some(text) => {
                        let mut names = placeholders(text);
                        names.dedup();
                        names.sort();
                        names.dedup();
                        for p in names {
                            if !allowed_placeholder(&p, known) {
                                err(format!(
                                    "menu {id}, screen {name}: text {key:?} in {lang} uses unknown placeholder {{{p}}}"
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    // Reachability from the start and the entry screens.
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut queue: VecDeque<&str> = VecDeque::new();
    queue.push_back(&menu.start);
    queue.extend(menu.entry.iter().map(|g| g.screen.as_str()));
    while let Some(s) = queue.pop_front() {
        if !seen.insert(s) {
            continue;
        }
        if let Some(screen) = menu.screens.get(s) {
            queue.extend(screen.targets());
        }
    }
    for name in menu.screens.keys() {
        if !seen.contains(name.as_str()) {
            errors.push(format!("menu {id}: screen {name:?} is unreachable"));
        }
    }
    if structural {
        // Rendering a menu with dangling parts would only repeat the errors above.
        return;
    }
    render_all(set, menu, known, limits, errors);
}

/// Renders every screen in every language with the widest values and a full list.
fn render_all(
    set: &MenuSet,
    menu: &MenuDef,
    known: &Vars,
    limits: ScreenLimits,
    errors: &mut Vec<String>,
) {
    let Ok(engine) = Engine::new(set, &menu.id) else {
        return;
    };
    let wide_item = |i: usize, n: usize| ListItem {
        id: i.to_string(),
        labels: ["Ж".repeat(n), "Ж".repeat(n), "W".repeat(n)],
        extra: Vars::from([("currency".to_owned(), "TJS".to_owned())]),
    };
    let lists = move |source: ListSource| -> Vec<ListItem> {
        let n = match source {
            ListSource::Communities => MAX_COMMUNITY_NAME,
            ListSource::MyPledges => MAX_OWN_PLEDGE,
            ListSource::Meetings => MAX_MEETING,
            ListSource::TotalProjects => MAX_PROJECT_NAME + MAX_STATE_MARK + 3,
            // (a coordinator's communities are checked as wide as projects: wider than needed)
            ListSource::OpenProjects | ListSource::CoordProjects | ListSource::CoordCommunities => {
                MAX_PROJECT_NAME
            }
        };
        (1..=15).map(|i| wide_item(i, n)).collect()
    };
    let effect_result: Vars = known
        .iter()
        .filter(|(k, _)| !k.contains('.'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for lang in Language::ALL {
        for name in menu.screens.keys() {
            let Some((world_caller, path)) = route_to(menu, name, lang) else {
                continue;
            };
            // Replay the path to the screen with every effect answered by worst-case values
            // (and asking where the path goes to a confirm screen's `ask`).
            let results: BTreeMap<usize, Vars> = (0..=path.len() + 1)
                .map(|s| {
                    let mut r = effect_result.clone();
                    if s >= 1 && path.get(s - 1).is_some_and(|(_, asks)| *asks) {
                        r.insert("ask".into(), "1".into());
                    }
                    (s, r)
                })
                .collect();
            let mut reads: HashMap<String, Vars> = HashMap::new();
            let mut inputs: Vec<&str> = path.iter().map(|(i, _)| i.as_str()).collect();
            let scene = Scene {
                caller: world_caller.clone(),
                lists: &lists,
                globals: known,
                default_language: lang,
                max_amount: Decimal::from(100_000),
                limits,
            };
            let try_inputs =
                |inputs: &[&str], reads: &mut HashMap<String, Vars>| -> Result<Reply, String> {
                    let mut transport = WorstCase(&effect_result, &lists);
                    let mut answers = Answers {
                        results: results.clone(),
                        reads: std::mem::take(reads),
                        lists: HashMap::new(),
                    };
                    let reply = ready(drive(
                        &engine,
                        &scene,
                        0,
                        inputs,
                        &mut answers,
                        MAX_NEEDS,
                        &mut transport,
                    ));
                    *reads = answers.reads;
                    reply.map_err(|e| e.to_string())
                };
            match try_inputs(&inputs, &mut reads) {
                Err(message) => {
                    errors.push(format!(
                        "menu {}, screen {name} in {lang}: {message}",
                        menu.id
                    ));
                    continue;
                }
                // The last screen of a session closes it: a page after it could never be
                // reached, nor a page before it read again.
                Ok(reply)
                    if matches!(menu.screens.get(name), Some(ScreenDef::End { .. }))
                        && !reply.end =>
                {
                    errors.push(format!(
                        "menu {}, screen {name} in {lang}: an end screen must fit one screen, and with the widest values it pages: {:?}",
                        menu.id, reply.text
                    ));
                }
                Ok(_) => {}
            }
            // The same screen with an error notice above it (a wrong input).
            inputs.push("x");
            if let Err(message) = try_inputs(&inputs, &mut reads) {
                errors.push(format!(
                    "menu {}, screen {name} in {lang} (after a wrong input): {message}",
                    menu.id
                ));
            }
        }
    }
}

/// The checker's transport: every read answers the widest values; effects are answered in
/// advance (by step), so one asked for is a path the checker did not foresee.
struct WorstCase<'a>(&'a Vars, &'a (dyn Fn(ListSource) -> Vec<ListItem> + Sync));

impl Transport for WorstCase<'_> {
    type Error = DriveError;

    async fn read(&mut self, _: ReadNeed<'_>) -> Result<Vars, DriveError> {
        Ok(self.0.clone())
    }

    async fn effect(&mut self, need: EffectNeed<'_>) -> Result<Vars, DriveError> {
        Err(DriveError::Broken(format!(
            "unexpected effect {} at step {}",
            need.action, need.step
        )))
    }

    async fn list(&mut self, need: ListNeed) -> Result<Vec<ListItem>, DriveError> {
        Ok((self.1)(need.source))
    }
}

/// An input, and whether the effect it runs asks first (leads to a confirm screen's `ask`).
type PathStep = (String, bool);

/// A caller and a sequence of inputs that lead to `target`: from the start for a known,
/// registered caller, or from an entry screen for a caller that fails its guard.
fn route_to(menu: &MenuDef, target: &str, lang: Language) -> Option<(Caller, Vec<PathStep>)> {
    let full = Caller {
        language: Some(lang),
        registered: true,
        pin_ok: true,
    };
    if let Some(path) = path_to(menu, &menu.start, target) {
        return Some((full, path));
    }
    for guard in &menu.entry {
        let mut caller = full.clone();
        match guard.unless {
            Condition::HasLanguage => caller.language = None,
            Condition::Registered => caller.registered = false,
            Condition::PinOk => caller.pin_ok = false,
        }
        if let Some(path) = path_to(menu, &guard.screen, target) {
            return Some((caller, path));
        }
    }
    None
}

/// The shortest sequence of inputs from screen `from` to `target`.
fn path_to(menu: &MenuDef, from: &str, target: &str) -> Option<Vec<PathStep>> {
    let mut queue: VecDeque<(String, Vec<PathStep>)> = VecDeque::new();
    let mut seen = BTreeSet::new();
    queue.push_back((from.to_owned(), Vec::new()));
    while let Some((screen, path)) = queue.pop_front() {
        if screen == target {
            return Some(path);
        }
        if !seen.insert(screen.clone()) {
            continue;
        }
        let Some(def) = menu.screens.get(&screen) else {
            continue;
        };
        let mut step = |next: &str, input: String, asks: bool| {
            let mut p = path.clone();
            p.push((input, asks));
            queue.push_back((next.to_owned(), p));
        };
        for (i, o) in def.options().iter().enumerate() {
            if let Some(next) = &o.next {
                step(next, (i + 1).to_string(), false);
            }
        }
        match def {
            ScreenDef::List { next, .. } => step(next, "1".into(), false),
            ScreenDef::Input { next, input, .. } => {
                let sample = match input {
                    InputKind::Amount => "1",
                    InputKind::Pin => "1234",
                    InputKind::Code => "1234567",
                    InputKind::Date => "0112",
                    InputKind::Time => "1000",
                    InputKind::Text => "School",
                };
                step(next, sample.into(), false)
            }
            ScreenDef::Confirm { next, no, ask, .. } => {
                step(next, "1".into(), false);
                step(no, "2".into(), false);
                if let Some(ask) = ask {
                    step(ask, "1".into(), true);
                }
            }
            _ => {}
        }
    }
    None
}
