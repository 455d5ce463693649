//! The menu engine: a pure function from (menu, caller, input history) to a screen.
//!
//! A USSD aggregator sends the whole input history with every hop, so the engine rebuilds a
//! session's position by replaying that history from the first screen. It never touches the
//! database: when the replay reaches an effect (a pledge) or a screen that shows data (a
//! project's total) whose result it has not been given, it stops and returns a [`Need`]. The
//! caller runs that action (in a transaction keyed by session and step, so a repeated hop
//! cannot apply it twice), adds the result and replays again. A hop that only navigates
//! therefore needs nothing but the caller's context.

pub mod check;
pub mod drive;
pub mod menu;
pub mod named;
pub mod render;

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;

pub use menu::{MenuDef, MenuSet, ScreenDef};
pub use named::{Action, Condition, Data, ListSource, Read};

use crate::domain::{money, text::ScreenLimits, Language};
use menu::{fill, InputKind, OptionDef};
use render::{paginate, Unit};

/// Values carried through a session (choices, typed input, action results).
pub type Vars = BTreeMap<String, String>;

pub const KEY_BACK: &str = "0";
pub const KEY_HOME: &str = "00";
pub const KEY_MORE: &str = "99";

/// What the engine knows about the caller when a session starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Caller {
    pub language: Option<Language>,
    pub registered: bool,
    /// A coordinator who entered the right PIN in this session.
    #[serde(default)]
    pub pin_ok: bool,
}

/// An entry of a list screen (a project, a community).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItem {
    pub id: String,
    /// The label in tg, ru, en order (see [`Language::ALL`]).
    pub labels: [String; 3],
    /// Extra values stored with the choice (e.g. a project's currency).
    pub extra: Vars,
}

impl ListItem {
    pub fn label(&self, lang: Language) -> &str {
        let i = Language::ALL.iter().position(|l| *l == lang).unwrap_or(2);
        &self.labels[i]
    }
}

impl Condition {
    /// Whether the caller satisfies it.
    pub fn holds(self, caller: &Caller) -> bool {
        match self {
            Condition::HasLanguage => caller.language.is_some(),
            Condition::Registered => caller.registered,
            Condition::PinOk => caller.pin_ok,
        }
    }
}

/// Something the replay cannot go past without the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Run an effect for this step and replay with its result.
    Effect {
        step: usize,
        action: Action,
        arg: Option<String>,
        vars: Vars,
        language: Language,
    },
    /// Read data for a screen and replay with it under `key`.
    Read {
        key: String,
        action: Read,
        vars: Vars,
        language: Language,
    },
    /// Read a lazy list (see [`ListSource::lazy`]) and replay with it.
    List {
        source: ListSource,
        language: Language,
    },
}

/// The screen to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    /// The session is over (`END`).
    pub end: bool,
    pub language: Language,
}

/// Everything the replay may use besides the input history.
pub struct World<'a> {
    pub caller: Caller,
    pub lists: &'a (dyn Fn(ListSource) -> Vec<ListItem> + Sync),
    /// The lazy lists read so far.
    pub listed: &'a HashMap<ListSource, Vec<ListItem>>,
    /// Results of effects, by step.
    pub results: &'a BTreeMap<usize, Vars>,
    /// Results of reads, by key.
    pub reads: &'a HashMap<String, Vars>,
    /// Values every text may use (hotline, maximum amount).
    pub globals: &'a Vars,
    pub default_language: Language,
    pub max_amount: Decimal,
    pub limits: ScreenLimits,
}

#[derive(Debug, Clone)]
struct Frame {
    screen: String,
    page: usize,
}

#[derive(Debug, Clone)]
struct State {
    stack: Vec<Frame>,
    vars: Vars,
    caller: Caller,
    notice: Option<String>,
}

impl State {
    fn language(&self, world: &World<'_>) -> Language {
        self.caller.language.unwrap_or(world.default_language)
    }
}

/// The engine for one menu of a [`MenuSet`].
pub struct Engine<'m> {
    set: &'m MenuSet,
    menu: &'m MenuDef,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("no menu named {0:?}")]
    NoMenu(String),
    #[error("menu {menu}: screen {screen:?} does not exist")]
    NoScreen { menu: String, screen: String },
    #[error("menu {menu}, screen {screen}: {message}")]
    Render {
        menu: String,
        screen: String,
        message: String,
    },
}

/// The most needs (reads and effects) a driver satisfies for one input before it gives up
/// on the menu; a correct menu needs one or two.
pub const MAX_NEEDS: usize = 16;

/// Either the engine needs something, or the menu itself is broken (which `menus check`
/// rules out before the server starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Need(Need),
    Broken(String),
}

impl From<Need> for Stop {
    fn from(n: Need) -> Stop {
        Stop::Need(n)
    }
}

impl<'m> Engine<'m> {
    pub fn new(set: &'m MenuSet, menu_id: &str) -> Result<Engine<'m>, EngineError> {
        let menu = set
            .menu(menu_id)
            .ok_or_else(|| EngineError::NoMenu(menu_id.to_owned()))?;
        Ok(Engine { set, menu })
    }

    pub fn menu(&self) -> &MenuDef {
        self.menu
    }

    /// Replays `inputs` (the tokens after the session's base step `base`) and returns the
    /// screen to show, or what is needed to go on. Step numbers are `base + 1 + index`.
    pub fn replay(&self, world: &World<'_>, base: usize, inputs: &[&str]) -> Result<Reply, Stop> {
        let mut st = State {
            stack: Vec::new(),
            vars: Vars::new(),
            caller: world.caller.clone(),
            notice: None,
        };
        self.enter_start(world, &mut st, base)?;
        for (i, token) in inputs.iter().enumerate() {
            let step = base + 1 + i;
            st.notice = None;
            self.apply(world, &mut st, step, token.trim())?;
        }
        self.render_current(world, &st)
    }

    fn screen(&self, id: &str) -> Result<&'m ScreenDef, Stop> {
        self.menu
            .screens
            .get(id)
            .ok_or_else(|| Stop::Broken(format!("screen {id:?} does not exist")))
    }

    fn top(&self, st: &State) -> Result<(&'m ScreenDef, usize), Stop> {
        let frame = st
            .stack
            .last()
            .ok_or_else(|| Stop::Broken("empty screen stack".into()))?;
        Ok((self.screen(&frame.screen)?, frame.page))
    }

    fn enter_start(&self, world: &World<'_>, st: &mut State, step: usize) -> Result<(), Stop> {
        st.stack.clear();
        let target = self
            .menu
            .entry
            .iter()
            .find(|g| !g.unless.holds(&st.caller))
            .map(|g| g.screen.as_str())
            .unwrap_or(self.menu.start.as_str());
        self.enter(world, st, target, step)
    }

    fn goto(
        &self,
        world: &World<'_>,
        st: &mut State,
        target: &str,
        step: usize,
    ) -> Result<(), Stop> {
        if target == self.menu.start {
            return self.enter_start(world, st, step);
        }
        if let Some(pos) = st.stack.iter().position(|f| f.screen == target) {
            // Going to a screen already open returns to it (and runs its data again).
            st.stack.truncate(pos);
        }
        self.enter(world, st, target, step)
    }

    fn enter(
        &self,
        world: &World<'_>,
        st: &mut State,
        target: &str,
        step: usize,
    ) -> Result<(), Stop> {
        let screen = self.screen(target)?;
        st.stack.push(Frame {
            screen: target.to_owned(),
            page: 0,
        });
        if let ScreenDef::Info {
            data: Some(Data::Effect(action)),
            ..
        } = screen
        {
            self.effect(world, st, step, *action, None)?;
        }
        self.at_end(world, st, step)
    }

    /// Runs the screen's `at_end` effect when its page on view is the last one (`menus
    /// check` makes sure no other effect runs at the same step).
    fn at_end(&self, world: &World<'_>, st: &mut State, step: usize) -> Result<(), Stop> {
        let (screen, _) = self.top(st)?;
        if let ScreenDef::Info {
            at_end: Some(end), ..
        } = screen
        {
            if self.is_last_page(world, st)? {
                self.effect(world, st, step, end.action, end.arg.as_deref())?;
            }
        }
        Ok(())
    }

    /// Runs (or recalls) an effect at `step` and folds its result into the state.
    fn effect(
        &self,
        world: &World<'_>,
        st: &mut State,
        step: usize,
        action: Action,
        arg: Option<&str>,
    ) -> Result<(), Stop> {
        let Some(result) = world.results.get(&step) else {
            return Err(Need::Effect {
                step,
                action,
                arg: arg.map(str::to_owned),
                vars: st.vars.clone(),
                language: st.language(world),
            }
            .into());
        };
        st.vars
            .extend(result.iter().map(|(k, v)| (k.clone(), v.clone())));
        // What the effect changes about the caller for the rest of the replay.
        match action {
            Action::SetLanguage => {
                if let Some(lang) = arg.and_then(|a| a.parse().ok()) {
                    st.caller.language = Some(lang);
                }
            }
            Action::Register => st.caller.registered = true,
            Action::VerifyPin => st.caller.pin_ok = result.get("ok").is_some_and(|v| v == "1"),
            Action::CreatePledge
            | Action::CreatePledgeAgain
            | Action::RequestCallback
            | Action::NextTip
            | Action::FindPledge
            | Action::RecordCash
            | Action::PreviewNotice
            | Action::SendNotice
            | Action::CancelPledge
            | Action::Rsvp
            | Action::TopicRead => {}
        }
        Ok(())
    }

    /// An action may refuse (a wrong PIN, an unknown code, too much money): its result then
    /// names the text (`refused`), shown above the same screen.
    fn refused(&self, world: &World<'_>, st: &mut State, step: usize) -> bool {
        let Some(key) = world.results.get(&step).and_then(|r| r.get("refused")) else {
            return false;
        };
        let text = self.set.text(st.language(world), key);
        st.notice = Some(self.fill(world, st, text));
        st.vars.remove("refused");
        true
    }

    fn invalid(&self, world: &World<'_>, st: &mut State) {
        st.notice = Some(self.set.text(st.language(world), "nav.invalid").to_owned());
    }

    fn apply(
        &self,
        world: &World<'_>,
        st: &mut State,
        step: usize,
        token: &str,
    ) -> Result<(), Stop> {
        let (screen, page) = self.top(st)?;
        if matches!(screen, ScreenDef::End { .. }) && self.is_last_page(world, st)? {
            // Input after the last screen: the person starts over.
            return self.enter_start(world, st, step);
        }
        match token {
            KEY_HOME => return self.enter_start(world, st, step),
            KEY_BACK => {
                if page > 0 {
                    set_page(st, page - 1);
                } else if st.stack.len() > 1 && !matches!(screen, ScreenDef::End { .. }) {
                    st.stack.pop();
                } else {
                    self.invalid(world, st);
                }
                return Ok(());
            }
            // "99" turns the page when there is one; on a one-page input screen it is input
            // (someone may well pledge 99).
            KEY_MORE if !self.is_last_page(world, st)? => {
                set_page(st, page + 1);
                return self.at_end(world, st, step);
            }
            KEY_MORE if !matches!(screen, ScreenDef::Input { .. }) => {
                self.invalid(world, st);
                return Ok(());
            }
            _ => {}
        }
        match screen {
            ScreenDef::Menu { options, .. } | ScreenDef::Info { options, .. } => {
                match choose(token, options.len()) {
                    Some(i) => self.follow(world, st, step, &options[i])?,
                    None => self.invalid(world, st),
                }
            }
            ScreenDef::List {
                source,
                store,
                next,
                ..
            } => {
                let items = self.items(world, st, *source)?;
                match choose(token, items.len()) {
                    Some(i) => {
                        let item = &items[i];
                        st.vars.insert(format!("{store}_id"), item.id.clone());
                        for (lang, label) in Language::ALL.iter().zip(item.labels.iter()) {
                            st.vars.insert(format!("{store}.{lang}"), label.clone());
                        }
                        st.vars
                            .extend(item.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
                        self.goto(world, st, next, step)?;
                    }
                    None => self.invalid(world, st),
                }
            }
            ScreenDef::Input {
                input,
                store,
                next,
                action,
                ..
            } => match validate(*input, token, world.max_amount) {
                Ok(value) => {
                    st.vars.insert(store.clone(), value);
                    if let Some(action) = action {
                        self.effect(world, st, step, *action, None)?;
                        if self.refused(world, st, step) {
                            return Ok(());
                        }
                    }
                    self.goto(world, st, next, step)?;
                }
                Err(key) => {
                    let lang = st.language(world);
                    let text = self.set.text(lang, key);
                    st.notice = Some(self.fill(world, st, text));
                }
            },
            ScreenDef::Confirm {
                action,
                next,
                no,
                ask,
                ..
            } => match token {
                "1" => {
                    self.effect(world, st, step, *action, None)?;
                    if self.refused(world, st, step) {
                        return Ok(());
                    }
                    // The action did nothing yet and asks the caller first (`menus check`
                    // makes sure an action that may ask has somewhere to ask).
                    match (st.vars.remove("ask"), ask) {
                        (Some(_), Some(ask)) => self.goto(world, st, ask, step)?,
                        (Some(_), None) => {
                            return Err(Stop::Broken(format!(
                                "action {:?} asks, and its screen has no `ask`",
                                action.name()
                            )))
                        }
                        (None, _) => self.goto(world, st, next, step)?,
                    }
                }
                "2" => self.goto(world, st, no, step)?,
                _ => self.invalid(world, st),
            },
            ScreenDef::End { .. } => self.invalid(world, st),
        }
        Ok(())
    }

    fn follow(
        &self,
        world: &World<'_>,
        st: &mut State,
        step: usize,
        option: &OptionDef,
    ) -> Result<(), Stop> {
        if let Some(action) = option.action {
            self.effect(world, st, step, action, option.arg.as_deref())?;
        }
        match &option.next {
            Some(next) => self.goto(world, st, next, step),
            None => Ok(()),
        }
    }

    /// A list's entries: from the world's lists, or a lazy list once it was read.
    fn items(
        &self,
        world: &World<'_>,
        st: &State,
        source: ListSource,
    ) -> Result<Vec<ListItem>, Stop> {
        if !source.lazy() {
            return Ok((world.lists)(source));
        }
        match world.listed.get(&source) {
            Some(items) => Ok(items.clone()),
            None => Err(Need::List {
                source,
                language: st.language(world),
            }
            .into()),
        }
    }

    fn is_last_page(&self, world: &World<'_>, st: &State) -> Result<bool, Stop> {
        let (_, page) = self.top(st)?;
        let pages = self.pages(world, st)?;
        Ok(page + 1 >= pages.len())
    }

    fn fill(&self, world: &World<'_>, st: &State, template: &str) -> String {
        let lang = st.language(world);
        fill(template, |name| lookup(world, st, lang, name))
    }

    /// The pages of the screen on top of the stack.
    fn pages(&self, world: &World<'_>, st: &State) -> Result<Vec<String>, Stop> {
        let (screen, _) = self.top(st)?;
        let lang = st.language(world);
        let t = |key: &'m str| -> &'m str { self.set.text(lang, key) };
        let mut units = Vec::new();
        let numbered = |units: &mut Vec<Unit>, options: &'m [OptionDef]| {
            for (i, o) in options.iter().enumerate() {
                units.push(Unit::Option(format!("{} {}", i + 1, t(&o.label))));
            }
        };
        let mut data_vars: Option<Vars> = None;
        match screen {
            ScreenDef::Menu { title, options } => {
                units.push(Unit::Text(self.fill(world, st, t(title))));
                numbered(&mut units, options);
            }
            ScreenDef::List {
                title,
                source,
                empty,
                ..
            } => {
                let items = self.items(world, st, *source)?;
                if items.is_empty() {
                    units.push(Unit::Text(self.fill(world, st, t(empty))));
                } else {
                    units.push(Unit::Text(self.fill(world, st, t(title))));
                    for (i, item) in items.iter().enumerate() {
                        units.push(Unit::Option(format!("{} {}", i + 1, item.label(lang))));
                    }
                }
            }
            ScreenDef::Input { prompt, .. } => {
                units.push(Unit::Text(self.fill(world, st, t(prompt))))
            }
            ScreenDef::Confirm { prompt, .. } => {
                units.push(Unit::Text(self.fill(world, st, t(prompt))));
                units.push(Unit::Option(t("nav.yes").to_owned()));
                units.push(Unit::Option(t("nav.no").to_owned()));
            }
            ScreenDef::Info {
                text,
                data,
                options,
                ..
            } => {
                if let Some(Data::Read(action)) = data {
                    let key = read_key(*action, &st.vars);
                    match world.reads.get(&key) {
                        Some(v) => data_vars = Some(v.clone()),
                        None => {
                            return Err(Need::Read {
                                key,
                                action: *action,
                                vars: st.vars.clone(),
                                language: lang,
                            }
                            .into())
                        }
                    }
                }
                let filled = match &data_vars {
                    Some(extra) => {
                        let mut with = st.clone();
                        with.vars
                            .extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
                        self.fill(world, &with, t(text))
                    }
                    None => self.fill(world, st, t(text)),
                };
                units.push(Unit::Text(filled));
                numbered(&mut units, options);
            }
            ScreenDef::End { text } => units.push(Unit::Text(self.fill(world, st, t(text)))),
        }
        let is_end = matches!(screen, ScreenDef::End { .. });
        let back_on_first = st.stack.len() > 1 && !is_end;
        let mut pages = paginate(
            &units,
            t("nav.back"),
            t("nav.more"),
            back_on_first,
            &world.limits,
        )
        .map_err(|e| Stop::Broken(e.to_string()))?;
        if is_end && pages.len() > 1 {
            // The last page of an END screen closes the session: no key can follow it.
            if let Some(last) = pages.last_mut() {
                if let Some(stripped) = last.strip_suffix(&format!("\n{}", t("nav.back"))) {
                    *last = stripped.to_owned();
                }
            }
        }
        Ok(pages)
    }

    fn render_current(&self, world: &World<'_>, st: &State) -> Result<Reply, Stop> {
        let (screen, page) = self.top(st)?;
        let pages = self.pages(world, st)?;
        let last = pages.len().saturating_sub(1);
        let shown = page.min(last);
        let mut text = pages.get(shown).cloned().unwrap_or_default();
        // A notice (wrong input) goes above the page it concerns when it fits there; it never
        // changes how the screen is paged, so "99" and "0" keep meaning the same page.
        if let Some(notice) = &st.notice {
            let with = format!("{notice}\n{text}");
            if world.limits.fits(&with) {
                text = with;
            } else {
                let lang = st.language(world);
                let nav = [
                    self.set.text(lang, "nav.back"),
                    self.set.text(lang, "nav.more"),
                ];
                text = notice_first(notice, &text, &world.limits, nav, shown == 0);
            }
        }
        Ok(Reply {
            text,
            end: matches!(screen, ScreenDef::End { .. }) && shown == last,
            language: st.language(world),
        })
    }
}

/// When the notice and the whole page do not fit together: the notice, and the page without
/// its lines of text from the top down (a title, a prompt) until they fit; options and the
/// navigation lines are never dropped for a notice, so a page of options that has no room for
/// it is shown as it is (the same page again says the choice was not taken). A page that
/// holds no option keeps the notice and as many of its last lines as fit.
///
/// An option is a line numbered 1 to 99 ("3 Bridge"); the first line of a screen's first
/// page is its title or prompt even when it starts with a number ("1200 TJS for pledge
/// 4821735?" on the coordinator's cash screen).
fn notice_first(
    notice: &str,
    page: &str,
    limits: &ScreenLimits,
    nav: [&str; 2],
    first_page: bool,
) -> String {
    let lines: Vec<&str> = page.lines().collect();
    let first_line = lines.first().copied();
    let is_option = |line: &str| {
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        (1..=2).contains(&digits)
            && line.as_bytes().get(digits) == Some(&b' ')
            && !nav.contains(&line)
            && !(first_page && Some(line) == first_line)
    };
    let kept = |keep: &dyn Fn(usize, &str) -> bool| -> Vec<&str> {
        lines
            .iter()
            .enumerate()
            .filter(|(i, l)| keep(*i, l))
            .map(|(_, l)| *l)
            .collect()
    };
    let with = |lines: &[&str]| format!("{notice}\n{}", lines.join("\n"));
    // drop lines of text from the top, one at a time
    let text_lines: Vec<usize> = (0..lines.len())
        .filter(|&i| !is_option(lines[i]) && !nav.contains(&lines[i]))
        .collect();
    for dropped in 1..=text_lines.len() {
        let gone = &text_lines[..dropped];
        let candidate = with(&kept(&|i, _| !gone.contains(&i)));
        if limits.fits(&candidate) {
            return candidate;
        }
    }
    if lines.iter().any(|l| is_option(l)) {
        return page.to_owned();
    }
    for first in 0..lines.len() {
        let candidate = with(&lines[first..]);
        if limits.fits(&candidate) {
            return candidate;
        }
    }
    notice.to_owned()
}

/// Checks typed input by kind; the error is the key of the retry text.
fn validate(kind: InputKind, token: &str, max_amount: Decimal) -> Result<String, &'static str> {
    let digits = |min: usize, max: usize| {
        (min..=max).contains(&token.len()) && token.chars().all(|c| c.is_ascii_digit())
    };
    match kind {
        InputKind::Amount => money::parse_amount(token, max_amount)
            .map(money::format_amount)
            .map_err(|e| e.text_key()),
        InputKind::Pin if digits(4, 6) => Ok(token.to_owned()),
        InputKind::Pin => Err("input.pin"),
        InputKind::Code if digits(7, 7) => Ok(token.to_owned()),
        InputKind::Code => Err("input.code"),
        InputKind::Date if digits(4, 4) => {
            let (d, m) = (
                token[..2].parse::<u32>().unwrap_or(0),
                token[2..].parse::<u32>().unwrap_or(0),
            );
            if (1..=31).contains(&d) && (1..=12).contains(&m) {
                Ok(format!("{}.{}", &token[..2], &token[2..]))
            } else {
                Err("input.date")
            }
        }
        InputKind::Date => Err("input.date"),
        InputKind::Time if digits(4, 4) => {
            let (h, m) = (
                token[..2].parse::<u32>().unwrap_or(99),
                token[2..].parse::<u32>().unwrap_or(99),
            );
            if h < 24 && m < 60 {
                Ok(format!("{}:{}", &token[..2], &token[2..]))
            } else {
                Err("input.time")
            }
        }
        InputKind::Time => Err("input.time"),
        InputKind::Text if (2..=40).contains(&token.trim().chars().count()) => {
            Ok(token.trim().to_owned())
        }
        InputKind::Text => Err("input.text"),
    }
}

fn set_page(st: &mut State, page: usize) {
    if let Some(f) = st.stack.last_mut() {
        f.page = page;
    }
}

/// `"3"` → index 2, when 1 ≤ 3 ≤ len.
fn choose(token: &str, len: usize) -> Option<usize> {
    if token.is_empty() || token.len() > 3 || !token.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: usize = token.parse().ok()?;
    (1..=len).contains(&n).then(|| n - 1)
}

/// The key a read is cached under: the action and the ids chosen so far.
pub fn read_key(action: Read, vars: &Vars) -> String {
    let mut key = action.name().to_owned();
    for (k, v) in vars.iter().filter(|(k, _)| k.ends_with("_id")) {
        key.push_str(&format!(":{k}={v}"));
    }
    key
}

fn lookup(world: &World<'_>, st: &State, lang: Language, name: &str) -> Option<String> {
    st.vars
        .get(&format!("{name}.{lang}"))
        .or_else(|| st.vars.get(name))
        .or_else(|| world.globals.get(&format!("{name}.{lang}")))
        .or_else(|| world.globals.get(name))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_parses_numbers_in_range() {
        assert_eq!(choose("1", 3), Some(0));
        assert_eq!(choose("3", 3), Some(2));
        assert_eq!(choose("4", 3), None);
        assert_eq!(choose("0", 3), None);
        assert_eq!(choose("x", 3), None);
        assert_eq!(choose("", 3), None);
        assert_eq!(choose("01", 3), Some(0));
    }

    #[test]
    fn a_notice_never_pushes_an_option_out_of_view() {
        let limits = ScreenLimits::default();
        let nav = ["0 Бозгашт", "99 Давом"];
        let notice = "Интихоби нодуруст.";
        // the last page of a list: only options, no room for the notice
        let page = "3 Деҳаи сеюм\n4 Деҳаи чорум\n5 Деҳаи панҷум\n6 Деҳаи шашум\n0 Бозгашт";
        assert!(!limits.fits(&format!("{notice}\n{page}")));
        assert_eq!(notice_first(notice, page, &limits, nav, false), page);
        // a title gives way to the notice, the options stay
        let page =
            "Ҳашар. Деҳаи худро аз рӯйхат интихоб кунед:\n1 Анзоб\n2 Саразм\n0 Бозгашт\n99 Давом";
        assert!(!limits.fits(&format!("{notice}\n{page}")));
        assert_eq!(
            notice_first(notice, page, &limits, nav, true),
            format!("{notice}\n1 Анзоб\n2 Саразм\n0 Бозгашт\n99 Давом")
        );
        // a page without options (a prompt) keeps the notice and its last lines
        let long = "Ж".repeat(70);
        let shown = notice_first(notice, &format!("{long}\n0 Бозгашт"), &limits, nav, true);
        assert_eq!(shown, format!("{notice}\n0 Бозгашт"));
        // a prompt that starts with an amount is a prompt, not an option: it gives way
        let notice = "Аз бақияи ваъда зиёд аст. Ҳеҷ чиз сабт нашуд.";
        let page = "1200 TJS барои ваъдаи 9910769 сабт шавад?\n1 Ҳа\n2 Не\n0 Бозгашт";
        assert!(!limits.fits(&format!("{notice}\n{page}")));
        assert_eq!(
            notice_first(notice, page, &limits, nav, true),
            format!("{notice}\n1 Ҳа\n2 Не\n0 Бозгашт")
        );
    }

    #[test]
    fn read_key_uses_ids_only() {
        let mut v = Vars::new();
        v.insert("project_id".into(), "7".into());
        v.insert("amount".into(), "500".into());
        assert_eq!(
            read_key(Read::ProjectTotal, &v),
            "project_total:project_id=7"
        );
    }
}
