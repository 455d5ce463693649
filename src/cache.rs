//! What a USSD hop reads, kept in each process's memory (issue 12): the communities and
//! projects (the reference), who calls from each number (callers), and which sessions have
//! a row in the database (recorded effects or a restart). A navigating hop of a known
//! caller in a session without a recorded effect then needs no database round trip at all;
//! a session with effects needs one indexed read.
//!
//! **Coherence.** Every change to what is kept is announced by a trigger in the changing
//! transaction (`NOTIFY hashar_cache`, migration `20261130197000_cache_notify`), delivered
//! when it commits, in commit order, to every process on the database. One exception: a
//! pledge made in one statement leaves its session's notification to its process, which
//! sends it right after the commit ([`Cache::announce_session`]), so that pledges' commits
//! do not queue for PostgreSQL's notification lock. [`Cache::follow`]
//! listens on its own connection and drops (callers, sessions) or reloads (the reference)
//! what a notification names. The cache serves only while it follows: at start, and whenever
//! the listening connection is lost or a heartbeat it sends itself does not come back in
//! time, it stops serving (hops read the database, as without a cache), forgets everything,
//! listens again and reloads, so a notification lost with a connection can never leave a
//! stale entry behind.
//!
//! A caller read from the database is kept only if no caller notification was handled
//! while it was being read (an epoch), so a change committed during the read cannot be
//! overwritten by the older value. A process marks a session itself before it runs an
//! effect or restarts it, so its own next hop never depends on the notification's timing.
//!
//! **What a stale read could cost**, in the window between a commit and its notification
//! being handled (milliseconds; bounded by the heartbeat when a connection hangs):
//! another process may list a project that has just closed (the pledge is then refused by
//! the pledge's own statement, as for a project that closed during a session), show a
//! caller's old language or treat a just-registered number as unknown for one hop, or not
//! know that a session got its first effect on another process (the effect is then run
//! again with the same idempotency key and gives the recorded result; for a pledge's session
//! the same if its process died before announcing it). Nothing is written
//! from the cache: every effect still runs in its own transaction on the database.
//!
//! Written by hand: the crates for caches (moka, quick_cache) bound and expire entries but
//! know nothing of PostgreSQL's notifications or of starting over when they may have been
//! lost, which is the part that matters here; the maps themselves are std's.

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasher, BuildHasherDefault, DefaultHasher},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
    },
    time::Duration,
};

use sqlx::{
    postgres::{PgListener, PgPoolOptions},
    PgPool,
};
use tokio::{sync::mpsc, time::Instant};

use crate::clock::Clock;
use crate::store::{
    projects::ProjectItem,
    ussd_sessions::{self, KnownCaller, ListedItem, ReferenceProject},
    Localized, ProjectId,
};

/// The channel of the triggers' notifications.
pub const CHANNEL: &str = "hashar_cache";

/// The listening connection's `application_name` (seen in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "hashar-cache";

/// How often the follower sends itself a heartbeat; one that has not come back by the next
/// makes it start over.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Most callers kept; past it the map starts empty again (the programme has some 2,000
/// households, the benchmarks 10,000).
const MAX_CALLERS: usize = 200_000;

/// How long to wait before connecting again after a failed start, or sending the session
/// announcements again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// Most session announcements waiting to be sent (the database unreachable meanwhile); past
/// it new ones are given up (logged): another process then reads such a session as new,
/// which costs a repeated effect with the same idempotency key and the same result.
const MAX_ANNOUNCEMENTS: usize = 65_536;

/// The communities and projects, as loaded.
#[derive(Debug, Default)]
pub struct Reference {
    pub communities: Vec<ListedItem>,
    /// Every project, in id order.
    pub projects: Vec<ReferenceProject>,
}

impl Reference {
    /// A community's projects that are open or closed after `since`, in id order (the rule of
    /// the SQL function `listed_projects`).
    pub fn listed(
        &self,
        community: i64,
        since: chrono::DateTime<chrono::Utc>,
    ) -> impl Iterator<Item = &ListedItem> {
        self.projects
            .iter()
            .filter(move |p| {
                p.community_id == community
                    && (p.open || p.item.closed_at.is_some_and(|at| at > since))
            })
            .map(|p| &p.item)
    }

    /// A community's projects as an SMS names and lists them, in id order: the open ones,
    /// and with `closed_since` also those closed after it (as [`Reference::listed`]).
    pub fn projects_of(
        &self,
        community: i64,
        closed_since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Vec<ProjectItem> {
        self.projects
            .iter()
            .filter(|p| {
                p.community_id == community
                    && (p.open
                        || closed_since
                            .is_some_and(|since| p.item.closed_at.is_some_and(|at| at > since)))
            })
            .map(|p| ProjectItem {
                id: ProjectId(p.item.id),
                code: p.code.clone(),
                name: Localized {
                    tg: p.item.tg.clone(),
                    ru: p.item.ru.clone(),
                    en: p.item.en.clone(),
                },
                currency: p.item.currency.clone().unwrap_or_default(),
                closed_at: p.item.closed_at,
                completed: p.item.completed.unwrap_or(false),
            })
            .collect()
    }
}

#[derive(Default)]
struct State {
    /// Serving: following notifications since the last load.
    live: bool,
    /// Moves on at every start and every caller notification (see [`Cache::caller`]).
    epoch: u64,
    reference: Arc<Reference>,
    callers: HashMap<String, KnownCaller>,
    /// Sessions with a row, by a hash of their key, with when they were last heard of. A
    /// collision only costs a read.
    sessions: HashMap<u64, Instant, BuildHasherDefault<DefaultHasher>>,
    /// This process's barriers ([`Cache::sync`]) that have come back.
    synced: HashSet<u64>,
    /// How many times the cache has started serving.
    starts: u64,
    /// How many starts have failed (the database cannot be reached, say).
    failed_starts: u64,
}

/// Sessions whose new row this process announces itself, after the commit that made it
/// ([`Cache::announce_session`]).
#[derive(Default)]
struct Announcements {
    pending: Vec<String>,
    /// How many were queued and how many handled (sent, or given up), ever.
    queued: u64,
    handled: u64,
}

struct Inner {
    state: RwLock<State>,
    announcements: Mutex<Announcements>,
    /// Wakes the announcer ([`Cache::follow`]) when something is queued.
    announce: tokio::sync::Notify,
    /// An announcer runs: effects may leave their session's notification to this process.
    announcing: AtomicBool,
    /// Held through a send of the announcements: one at a time, so that each takes from the
    /// queue only what it sent.
    sending: tokio::sync::Mutex<()>,
    /// Tells the waiters of [`Cache::ready`] and [`Cache::sync`] that something moved.
    moved: tokio::sync::watch::Sender<()>,
    /// This process among the listeners of the channel.
    instance: u64,
    barriers: AtomicU64,
}

/// The hop cache of one process (cheap to clone: one shared state). It serves nothing
/// until [`Cache::follow`] has loaded it.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            inner: Arc::new(Inner {
                state: RwLock::default(),
                announcements: Mutex::default(),
                announce: tokio::sync::Notify::new(),
                announcing: AtomicBool::new(false),
                sending: tokio::sync::Mutex::new(()),
                moved: tokio::sync::watch::Sender::new(()),
                instance: rand::random(),
                barriers: AtomicU64::new(0),
            }),
        }
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("live", &self.live())
            .finish_non_exhaustive()
    }
}

fn session_hash(key: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(key)
}

/// Why the follower started (over).
#[derive(Debug, Clone, Copy)]
enum Start {
    First,
    Lost,
    Heartbeat,
}

impl Start {
    fn name(self) -> &'static str {
        match self {
            Start::First => "start",
            Start::Lost => "lost",
            Start::Heartbeat => "heartbeat",
        }
    }
}

/// A task stopped when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the listening task hands to the follower.
enum Heard {
    Payload(String),
    /// The listening connection is gone: notifications may have been lost.
    Lost,
}

impl Cache {
    // A poisoned lock only means a panic elsewhere while holding it; the maps are still
    // whole (every update is a single insert or removal), so go on with them.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn announcements(&self) -> MutexGuard<'_, Announcements> {
        self.inner
            .announcements
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Serving from memory (following the database's notifications).
    pub fn live(&self) -> bool {
        self.read().live
    }

    /// The reference, when serving.
    pub fn reference(&self) -> Option<Arc<Reference>> {
        let s = self.read();
        s.live.then(|| s.reference.clone())
    }

    /// Who calls from `phone`: from memory, or read once and kept. `None` when not serving.
    pub async fn caller(
        &self,
        pool: &PgPool,
        phone: &str,
    ) -> Result<Option<KnownCaller>, sqlx::Error> {
        let epoch = {
            let s = self.read();
            if !s.live {
                crate::metrics::cache_read("uncached");
                return Ok(None);
            }
            if let Some(c) = s.callers.get(phone) {
                crate::metrics::cache_read("memory");
                return Ok(Some(*c));
            }
            s.epoch
        };
        crate::metrics::cache_read("database");
        let caller = ussd_sessions::known_caller(pool, phone).await?;
        let mut s = self.write();
        // Kept only if no caller changed meanwhile: what was read may be older than a change
        // already handled.
        if s.live && s.epoch == epoch {
            if s.callers.len() >= MAX_CALLERS {
                s.callers.clear();
            }
            s.callers.insert(phone.to_owned(), caller);
        }
        Ok(Some(caller))
    }

    /// Forgets who calls from `phone` (this process changed it: a registration, a language).
    pub fn forget_caller(&self, phone: &str) {
        let mut s = self.write();
        s.epoch += 1;
        s.callers.remove(phone);
    }

    /// Whether the session may have a row (then its hop reads it). Only meaningful while
    /// serving.
    pub fn session_recorded(&self, session_key: &str) -> bool {
        self.read()
            .sessions
            .contains_key(&session_hash(session_key))
    }

    /// This process is about to record something for the session (an effect, a restart).
    pub fn mark_session(&self, session_key: &str) {
        self.write()
            .sessions
            .insert(session_hash(session_key), Instant::now());
    }

    /// Whether this process announces the sessions its one-statement effects make
    /// ([`Cache::announce_session`]): while [`Cache::follow`] runs. Otherwise the session's
    /// trigger notifies in the effect's commit.
    pub fn announces(&self) -> bool {
        self.inner.announcing.load(Ordering::SeqCst)
    }

    /// Tells the other processes, soon after the commit that made it, that the session has
    /// a row: for an effect whose statement left the notification to this process (its
    /// commit then does not wait for PostgreSQL's notification lock, which every notifying
    /// commit holds through its WAL flush). Queued; [`Cache::follow`] sends what is queued
    /// in one statement at a time. If the announcer has stopped meanwhile (the process
    /// stopping while a pledge was under way), this call sends the queue itself, so that no
    /// key is left behind: either the announcer's last send, which follows its stop, takes
    /// the key, or this call sees it stopped (both orders are sequentially consistent).
    pub async fn announce_session(&self, session_key: &str, pool: &PgPool) {
        {
            let mut a = self.announcements();
            a.queued += 1;
            if a.pending.len() >= MAX_ANNOUNCEMENTS {
                a.handled += 1;
                tracing::warn!("USSD cache: too many session announcements waiting; one given up");
            } else {
                a.pending.push(session_key.to_owned());
            }
        }
        self.inner.announce.notify_one();
        if !self.announces() {
            let _ = self.send_announcements(pool).await;
        }
    }

    /// Waits until every session announcement queued before the call has been sent (or
    /// given up), at most `wait`; whether it has. Tests use it before another process's
    /// [`Cache::sync`].
    pub async fn announced(&self, wait: Duration) -> bool {
        let target = self.announcements().queued;
        let mut rx = self.inner.moved.subscribe();
        let _ = tokio::time::timeout(
            wait,
            rx.wait_for(|_| self.announcements().handled >= target),
        )
        .await;
        self.announcements().handled >= target
    }

    /// Sends what is queued, in one statement whose commit does not wait for its WAL flush
    /// (a notification lost with a crashed server is lost with every listener's connection
    /// too, and they start over); false when it failed (kept for the next try). The keys
    /// leave the queue only once sent, so a send cut short (the task dropped as the process
    /// stops) leaves them for the last one; one sent twice costs a listener one more read.
    async fn send_announcements(&self, pool: &PgPool) -> bool {
        let _one = self.inner.sending.lock().await;
        let keys = self.announcements().pending.clone();
        if keys.is_empty() {
            return true;
        }
        let sent = sqlx::query(
            "with c as materialized (select set_config('synchronous_commit', 'off', true))
             select pg_notify($1, 'session:' || k) from c, unnest($2::text[]) as k",
        )
        .bind(CHANNEL)
        .bind(&keys)
        .execute(pool)
        .await;
        match sent {
            Ok(_) => {
                {
                    // only appended to meanwhile: the first ones are those sent
                    let mut a = self.announcements();
                    let n = keys.len().min(a.pending.len());
                    a.pending.drain(..n);
                    a.handled += n as u64;
                }
                self.moved();
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, sessions = keys.len(), "USSD cache: sessions not announced yet; trying again");
                false
            }
        }
    }

    /// Sends the session announcements as they are queued, until dropped.
    async fn announce_forever(&self, pool: &PgPool) {
        loop {
            self.inner.announce.notified().await;
            while !self.send_announcements(pool).await {
                tokio::time::sleep(RETRY).await;
            }
        }
    }

    /// How many times the cache has started serving (once, unless it had to start over).
    pub fn starts(&self) -> u64 {
        self.read().starts
    }

    /// Waits until the cache has started serving more than `starts` times, at most `wait`;
    /// whether it has.
    pub async fn started_after(&self, starts: u64, wait: Duration) -> bool {
        let mut rx = self.inner.moved.subscribe();
        let _ = tokio::time::timeout(
            wait,
            rx.wait_for(|_| {
                let s = self.read();
                s.live && s.starts > starts
            }),
        )
        .await;
        let s = self.read();
        s.live && s.starts > starts
    }

    /// Waits until the cache serves or a start has failed, at most `wait`; whether it
    /// serves.
    pub async fn ready(&self, wait: Duration) -> bool {
        let mut rx = self.inner.moved.subscribe();
        let _ = tokio::time::timeout(
            wait,
            rx.wait_for(|_| {
                let s = self.read();
                s.live || s.failed_starts > 0
            }),
        )
        .await;
        self.live()
    }

    /// A barrier: returns once every change committed before the call has been handled (or
    /// the cache does not serve, or `wait` passed). Tests use it to make a change and then see
    /// it; it sends one notification of its own.
    pub async fn sync(&self, pool: &PgPool, wait: Duration) -> Result<(), sqlx::Error> {
        if !self.live() {
            return Ok(());
        }
        let n = self.inner.barriers.fetch_add(1, Ordering::Relaxed) + 1;
        let mut rx = self.inner.moved.subscribe();
        sqlx::query("select pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("sync:{}:{n}", self.inner.instance))
            .execute(pool)
            .await?;
        let _ = tokio::time::timeout(
            wait,
            rx.wait_for(|_| {
                let mut s = self.write();
                !s.live || s.synced.remove(&n)
            }),
        )
        .await;
        Ok(())
    }

    fn moved(&self) {
        self.inner.moved.send_replace(());
    }

    /// Stops serving and forgets everything.
    fn stop_serving(&self) {
        {
            let mut s = self.write();
            s.live = false;
            s.epoch += 1;
            s.reference = Arc::default();
            s.callers = HashMap::new();
            s.sessions = HashMap::default();
            s.synced.clear();
        }
        self.moved();
    }

    /// Follows the database's notifications on a connection of its own (not one of
    /// `pool`'s; `pool` is used for the loads and the heartbeats) until `until` completes:
    /// loads, serves, and starts over whenever notifications may have been lost. Sessions are
    /// remembered for twice `session_ttl` after they were last heard of.
    pub fn follow(
        &self,
        pool: PgPool,
        clock: Arc<dyn Clock>,
        session_ttl: Duration,
        until: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        cache.inner.announcing.store(true, Ordering::SeqCst);
        tokio::spawn(async move {
            tokio::select! {
                () = until => {}
                () = cache.follow_forever(&pool, &*clock, session_ttl * 2) => {}
                () = cache.announce_forever(&pool) => {}
            }
            cache.stop_serving();
            cache.inner.announcing.store(false, Ordering::SeqCst);
            // what the last effects queued, once, as the process stops
            let _ = cache.send_announcements(&pool).await;
        })
    }

    async fn follow_forever(&self, pool: &PgPool, clock: &dyn Clock, keep_sessions: Duration) {
        // One connection, apart from the pool's, so that listening never takes a hop's.
        let listen_pool = PgPoolOptions::new().max_connections(1).connect_lazy_with(
            (*pool.connect_options())
                .clone()
                .application_name(APPLICATION_NAME),
        );
        let mut why = Start::First;
        loop {
            self.stop_serving();
            let (tx, mut rx) = mpsc::unbounded_channel();
            let since = clock.now() - chrono::Duration::from_std(keep_sessions).unwrap_or_default();
            let listening = match self.start(pool, &listen_pool, tx, since).await {
                Ok(task) => task,
                Err(e) => {
                    self.write().failed_starts += 1;
                    self.moved();
                    tracing::warn!(error = %e, "USSD cache: cannot follow the database; hops read it meanwhile");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            // Stopped with this future too (when the follower is told to stop), so that the
            // listening connection never outlives it.
            let listening = AbortOnDrop(listening);
            crate::metrics::cache_start(why.name());
            tracing::info!(reason = why.name(), "USSD cache serving");
            why = self.serve(pool, &mut rx, keep_sessions).await;
            drop(listening);
            tracing::warn!(
                reason = why.name(),
                "USSD cache: notifications may have been lost; starting over"
            );
        }
    }

    /// Listens, then loads (a change committed in between is both loaded and heard: no
    /// loss), then serves.
    async fn start(
        &self,
        pool: &PgPool,
        listen_pool: &PgPool,
        tx: mpsc::UnboundedSender<Heard>,
        sessions_since: chrono::DateTime<chrono::Utc>,
    ) -> Result<tokio::task::JoinHandle<()>, sqlx::Error> {
        let mut listener = PgListener::connect_with(listen_pool).await?;
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        let task = tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if tx.send(Heard::Payload(n.payload().to_owned())).is_err() {
                            return;
                        }
                    }
                    Ok(None) | Err(_) => {
                        let _ = tx.send(Heard::Lost);
                        return;
                    }
                }
            }
        });
        let loaded = async {
            let (communities, projects) = ussd_sessions::reference(pool).await?;
            let sessions = ussd_sessions::recent_sessions(pool, sessions_since).await?;
            Ok::<_, sqlx::Error>((communities, projects, sessions))
        };
        let (communities, projects, sessions) = match loaded.await {
            Ok(l) => l,
            Err(e) => {
                task.abort();
                return Err(e);
            }
        };
        {
            let mut s = self.write();
            s.reference = Arc::new(Reference {
                communities,
                projects,
            });
            let now = Instant::now();
            s.sessions = sessions.iter().map(|k| (session_hash(k), now)).collect();
            s.live = true;
            s.starts += 1;
        }
        self.moved();
        Ok(task)
    }

    /// Handles notifications until they may have been lost; says why it stopped.
    async fn serve(
        &self,
        pool: &PgPool,
        rx: &mut mpsc::UnboundedReceiver<Heard>,
        keep_sessions: Duration,
    ) -> Start {
        let mut beat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        // A round that took long (a reload) is not followed by a burst of ticks: the second
        // would find the first's ping not back yet and start over for nothing.
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pings = 0u64;
        let mut awaited: Option<u64> = None;
        let mine = format!("{}:", self.inner.instance);
        loop {
            tokio::select! {
                heard = rx.recv() => {
                    let Some(Heard::Payload(first)) = heard else { return Start::Lost };
                    // Everything already delivered, in one batch: the reference is loaded
                    // once for a burst, and a barrier passes only after that load.
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        match more {
                            Heard::Payload(p) => batch.push(p),
                            Heard::Lost => return Start::Lost,
                        }
                    }
                    let mut reference = false;
                    let mut barriers = Vec::new();
                    for payload in &batch {
                        if payload == "reference" {
                            reference = true;
                        } else if let Some(phone) = payload.strip_prefix("phone:") {
                            self.forget_caller(phone);
                        } else if let Some(key) = payload.strip_prefix("session:") {
                            self.mark_session(key);
                        } else if let Some(n) = payload.strip_prefix("sync:").and_then(|r| r.strip_prefix(&mine)) {
                            barriers.extend(n.parse::<u64>().ok());
                        } else if let Some(n) = payload.strip_prefix("ping:").and_then(|r| r.strip_prefix(&mine)) {
                            if n.parse::<u64>().ok() == awaited {
                                awaited = None;
                            }
                        }
                    }
                    if reference {
                        match ussd_sessions::reference(pool).await {
                            Ok((communities, projects)) => {
                                self.write().reference = Arc::new(Reference { communities, projects });
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "USSD cache: reloading communities and projects failed");
                                return Start::Lost;
                            }
                        }
                    }
                    if !barriers.is_empty() {
                        self.write().synced.extend(barriers);
                        self.moved();
                    }
                }
                _ = beat.tick() => {
                    if awaited.is_some() {
                        return Start::Heartbeat;
                    }
                    pings += 1;
                    let sent = sqlx::query("select pg_notify($1, $2)")
                        .bind(CHANNEL)
                        .bind(format!("ping:{mine}{pings}"))
                        .execute(pool)
                        .await;
                    if let Err(e) = sent {
                        tracing::warn!(error = %e, "USSD cache: heartbeat not sent");
                        return Start::Lost;
                    }
                    awaited = Some(pings);
                    let old = Instant::now().checked_sub(keep_sessions);
                    if let Some(old) = old {
                        self.write().sessions.retain(|_, at| *at > old);
                    }
                }
            }
        }
    }
}
