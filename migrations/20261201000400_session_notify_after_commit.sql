-- Issue 12: a pledge's commit no longer takes PostgreSQL's notification lock.
--
-- A transaction that notifies takes one lock for the whole database at its commit and holds
-- it until the commit is flushed, so notifying commits happen one after another. The hop
-- cache's notification for a session's row (`session:<key>`, see 20261130197000) was sent by
-- every pledge made by USSD, which ordered all pledges behind each other's flushes.
--
-- A statement may now set `hashar.session_notify` to 'after_commit' for its transaction:
-- the recording process then announces the session itself once the statement has committed
-- (src/cache.rs, `Cache::announce_session`), in a batch whose commit does not wait for its
-- flush. Any other writer (a multi-statement effect, a restart, the console, SQL by hand)
-- notifies in its commit as before.

create or replace function cache_notify_session() returns trigger language plpgsql as $$
begin
    if current_setting('hashar.session_notify', true) = 'after_commit' then
        return null;
    end if;
    if tg_op = 'DELETE' then
        perform pg_notify('hashar_cache', 'session:' || old.session_key);
    else
        perform pg_notify('hashar_cache', 'session:' || new.session_key);
    end if;
    return null;
end
$$;
