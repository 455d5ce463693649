//! The conversation driver: the one loop that answers an input history. The engine's replay
//! is pure; when it needs data (a read) or an action (an effect) it stops and says so, and
//! the driver asks the transport for it and replays again, until a screen comes out.
//!
//! Every way of walking the menus goes through [`drive`]: a USSD hop (reads on the pool, each
//! effect once per session, step and history), an SMS conversation (everything in the text's
//! transaction), the menu checker and the tests (fakes). Only the [`Transport`] differs.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
};

use rust_decimal::Decimal;

use super::{Action, Caller, Engine, ListItem, ListSource, Need, Read, Reply, Stop, Vars, World};
use crate::domain::{text::ScreenLimits, Language};

/// Everything a replay may use besides the history and what the transport answered.
pub struct Scene<'a> {
    pub caller: Caller,
    pub lists: &'a (dyn Fn(ListSource) -> Vec<ListItem> + Sync),
    /// Values every text may use (hotline, maximum amount).
    pub globals: &'a Vars,
    pub default_language: Language,
    pub max_amount: Decimal,
    pub limits: ScreenLimits,
}

impl Scene<'_> {
    /// The world of one replay, with the answers so far.
    pub fn world<'w>(
        &'w self,
        results: &'w BTreeMap<usize, Vars>,
        reads: &'w HashMap<String, Vars>,
        listed: &'w HashMap<ListSource, Vec<ListItem>>,
    ) -> World<'w> {
        World {
            caller: self.caller.clone(),
            lists: self.lists,
            listed,
            results,
            reads,
            globals: self.globals,
            default_language: self.default_language,
            max_amount: self.max_amount,
            limits: self.limits,
        }
    }
}

/// What the transport answered so far: effects by step, reads by key, lazy lists by source.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub results: BTreeMap<usize, Vars>,
    pub reads: HashMap<String, Vars>,
    pub lists: HashMap<ListSource, Vec<ListItem>>,
}

impl Answers {
    /// Answers that start from recorded effects (a USSD session's).
    pub fn with_results(results: BTreeMap<usize, Vars>) -> Answers {
        Answers {
            results,
            ..Answers::default()
        }
    }
}

/// A read the replay needs for a screen.
#[derive(Debug, Clone, Copy)]
pub struct ReadNeed<'a> {
    /// Where its answer is kept (one read per screen and its variables).
    pub key: &'a str,
    pub action: Read,
    pub vars: &'a Vars,
    pub language: Language,
}

/// A lazy list the replay needs (see [`ListSource::lazy`]).
#[derive(Debug, Clone, Copy)]
pub struct ListNeed {
    pub source: ListSource,
    pub language: Language,
}

/// An effect the replay reached at `step` (the number of inputs that led to it).
#[derive(Debug, Clone, Copy)]
pub struct EffectNeed<'a> {
    pub step: usize,
    pub action: Action,
    pub arg: Option<&'a str>,
    pub vars: &'a Vars,
    pub language: Language,
}

/// How a conversation gets its reads and effects done.
pub trait Transport {
    type Error: From<DriveError>;

    fn read(&mut self, need: ReadNeed<'_>) -> impl Future<Output = Result<Vars, Self::Error>>;

    fn effect(&mut self, need: EffectNeed<'_>) -> impl Future<Output = Result<Vars, Self::Error>>;

    /// A lazy list's entries (a transport that walks no menu with one need not serve it).
    fn list(&mut self, need: ListNeed) -> impl Future<Output = Result<Vec<ListItem>, Self::Error>> {
        async move { Err(DriveError::Broken(format!("list {} is not served here", need.source)).into()) }
    }
}

/// Why the driver could not produce a screen by itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriveError {
    /// The menus are broken (a missing screen or text).
    #[error("{0}")]
    Broken(String),
    /// More reads and effects than any walk of sound menus needs.
    #[error("more than {0} reads and effects for one answer")]
    TooManyNeeds(usize),
}

/// Answers the history `inputs` (after the `base` inputs a restarted session ignores):
/// replays, and for every read or effect the replay stops at, asks `transport` and replays
/// again, at most `max_needs` times. `answers` holds what was answered before (a USSD
/// session's recorded effects, say) and gains what is answered now.
pub async fn drive<T: Transport>(
    engine: &Engine<'_>,
    scene: &Scene<'_>,
    base: usize,
    inputs: &[&str],
    answers: &mut Answers,
    max_needs: usize,
    transport: &mut T,
) -> Result<Reply, T::Error> {
    for _ in 0..max_needs {
        let stop = match engine.replay(
            &scene.world(&answers.results, &answers.reads, &answers.lists),
            base,
            &inputs[base..],
        ) {
            Ok(reply) => return Ok(reply),
            Err(stop) => stop,
        };
        match stop {
            Stop::Broken(message) => return Err(DriveError::Broken(message).into()),
            Stop::Need(Need::Read {
                key,
                action,
                vars,
                language,
            }) => {
                let data = transport
                    .read(ReadNeed {
                        key: &key,
                        action,
                        vars: &vars,
                        language,
                    })
                    .await?;
                answers.reads.insert(key, data);
            }
            Stop::Need(Need::List { source, language }) => {
                let items = transport.list(ListNeed { source, language }).await?;
                answers.lists.insert(source, items);
            }
            Stop::Need(Need::Effect {
                step,
                action,
                arg,
                vars,
                language,
            }) => {
                let result = transport
                    .effect(EffectNeed {
                        step,
                        action,
                        arg: arg.as_deref(),
                        vars: &vars,
                        language,
                    })
                    .await?;
                answers.results.insert(step, result);
            }
        }
    }
    Err(DriveError::TooManyNeeds(max_needs).into())
}

/// Runs a future whose every await is ready at once (a transport of fakes, as the menu
/// checker, the fuzz targets and the tests use) without an executor. Written here because
/// these callers are synchronous and a whole executor crate for "poll once" is more than
/// they need; a fake that does wait is a bug in the fake and panics here.
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("a fake transport waited"),
    }
}
