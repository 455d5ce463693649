-- Console sign-in (issue 10, step 2): staff passwords (argon2id) with a failure count and a
-- lock in columns like the PIN's (restarts and other instances see them), a session epoch
-- ("sign out everywhere" adds 1; a session of an older epoch is over), the console
-- language, and a way to disable someone without deleting them.
alter table coordinators
    add column password_hash text check (password_hash like '$argon2id$%'),
    add column password_failures integer not null default 0 check (password_failures >= 0),
    add column password_locked_until timestamptz,
    add column session_epoch integer not null default 0 check (session_epoch >= 0),
    add column language text check (language in ('tg', 'ru', 'en')),
    add column disabled_at timestamptz;

-- Console sessions: the DDL `tower_sessions_sqlx_store::PostgresStore::migrate()` would
-- create (the console's own store, `console::auth::PgStore`, does that crate's work). Rows are deleted when they expire
-- (`delete_expired`, run by the broadcast scheduler's loop) and at sign-out: the one table
-- with deletes.
create schema if not exists tower_sessions;
create table if not exists tower_sessions.session (
    id          text primary key not null,
    data        bytea not null,
    expiry_date timestamptz not null
);
create index session_expiry_date on tower_sessions.session (expiry_date);
