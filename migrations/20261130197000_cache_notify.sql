-- Issue 12: each process keeps what a USSD hop reads in memory (`src/cache.rs`) and learns
-- of every change to it through NOTIFY on the channel `hashar_cache`, sent by these triggers
-- in the transaction that makes the change (delivered when it commits, in commit order).
-- Payloads:
--   'reference'       communities, projects or a project's target reached changed
--   'phone:<E.164>'   who calls from this number changed (phones, households, coordinators)
--   'session:<key>'   a USSD session's row or its recorded effects changed
-- PostgreSQL sends one copy of equal payloads per transaction, so a statement touching many
-- rows of a reference table costs one notification.

create function cache_notify_reference() returns trigger language plpgsql as $$
begin
    perform pg_notify('hashar_cache', 'reference');
    return null;
end
$$;

create trigger communities_cache_notify after insert or update or delete or truncate on communities
    for each statement execute function cache_notify_reference();
create trigger projects_cache_notify after insert or update or delete or truncate on projects
    for each statement execute function cache_notify_reference();
create trigger project_target_reached_cache_notify after insert or update or delete or truncate on project_target_reached
    for each statement execute function cache_notify_reference();

-- A number's row: the number before and after the change.
create function cache_notify_phone() returns trigger language plpgsql as $$
begin
    if tg_op in ('UPDATE', 'DELETE') then
        perform pg_notify('hashar_cache', 'phone:' || old.phone);
    end if;
    if tg_op in ('INSERT', 'UPDATE') and (tg_op = 'INSERT' or new.phone is distinct from old.phone) then
        perform pg_notify('hashar_cache', 'phone:' || new.phone);
    end if;
    return null;
end
$$;

create trigger phones_cache_notify after insert or update or delete on phones
    for each row execute function cache_notify_phone();
create trigger coordinators_cache_notify after insert or update or delete on coordinators
    for each row execute function cache_notify_phone();

-- A household's language or community: every number of the household.
create function cache_notify_household() returns trigger language plpgsql as $$
begin
    perform pg_notify('hashar_cache', 'phone:' || p.phone)
    from phones p where p.household_id = old.id;
    return null;
end
$$;

create trigger households_cache_notify after update of language, community_id or delete on households
    for each row execute function cache_notify_household();

create function cache_notify_session() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        perform pg_notify('hashar_cache', 'session:' || old.session_key);
    else
        perform pg_notify('hashar_cache', 'session:' || new.session_key);
    end if;
    return null;
end
$$;

create trigger ussd_sessions_cache_notify after insert or update or delete on ussd_sessions
    for each row execute function cache_notify_session();
create trigger ussd_effects_cache_notify after insert or update or delete on ussd_effects
    for each row execute function cache_notify_session();
