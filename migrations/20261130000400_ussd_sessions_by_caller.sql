-- Issue 8, points 8 and 9: a USSD session belongs to its caller, a recorded effect is reused
-- only by a hop with the same inputs, and a pledge that repeats one made minutes ago asks
-- first.
--
-- Sessions are now keyed '<provider>:<phone>:<session id>' by the application (no schema
-- change): a different phone on a reused session id has its own session.

-- The inputs up to the step (SHA-256 of the `*`-joined history), so that a hop with another
-- history never gets this step's result. Rows from before this migration have none and are
-- never reused.
alter table ussd_effects add column inputs_hash bytea;

-- A pledge's time is the application's clock (`hashar.now`, set by `pledge_at` for its
-- transaction only) when it comes through a phone, else the database's. The 10-minute
-- repeat rule below compares the application's times with each other.
alter table pledges alter column created_at
    set default coalesce(nullif(current_setting('hashar.now', true), '')::timestamptz, now());

-- The same pledge (household, project, amount, not cancelled) made in the 10 minutes before
-- `p_now` under another idempotency key: {ask, minutes ago (1..10)}, or null.
create function recent_pledge(p_phone text, p_project bigint, p_amount numeric, p_now timestamptz, p_key text)
returns jsonb
language sql stable as $$
    select jsonb_build_object(
        'ask', '1',
        'minutes', least(10, greatest(1, ceil(extract(epoch from (p_now - pl.created_at)) / 60)))::int::text)
    from phones ph
    join pledges pl on pl.household_id = ph.household_id
    where ph.phone = p_phone and pl.project_id = p_project and pl.amount = p_amount
      and pl.status <> 'cancelled' and pl.idempotency_key <> p_key
      and pl.created_at > p_now - interval '10 minutes'
    order by pl.created_at desc
    limit 1
$$;

-- A pledge at the application's time `p_now`. Unless `p_again` (the caller answered "pledge
-- again"), a pledge that repeats a recent one is not made: the answer is {ask, minutes}. A
-- retry of a pledge already made (same key) is never asked about.
create function pledge_at(p_now timestamptz, p_project bigint, p_phone text, p_amount numeric,
                          p_channel text, p_key text, p_again boolean)
returns jsonb
language plpgsql as $$
declare
    v_recent jsonb;
begin
    if not p_again and not exists (select 1 from pledges where idempotency_key = p_key) then
        v_recent := recent_pledge(p_phone, p_project, p_amount, p_now, p_key);
        if v_recent is not null then
            return v_recent;
        end if;
    end if;
    perform set_config('hashar.now', p_now::text, true);
    return create_pledge(p_project, p_phone, p_amount, p_channel, p_key);
end $$;

-- The pledge step of a USSD session: claims (session, step) for this history, pledges (or
-- asks), records the result. A repeated or concurrent hop with the same history gets the
-- recorded result; a hop with another history at the same step takes the step over (its
-- own idempotency key keeps the other history's pledge from being made twice). The answer
-- has `fresh` when this call made the decision (not recorded in the session).
drop function ussd_pledge(text, text, jsonb, timestamptz, integer, bigint, numeric, text);
create function ussd_pledge(p_session text, p_phone text, p_start jsonb, p_now timestamptz, p_step integer,
                            p_project bigint, p_amount numeric, p_key text, p_hash bytea, p_again boolean)
returns jsonb
language plpgsql as $$
declare
    v_result jsonb;
begin
    insert into ussd_sessions (session_key, phone, start_caller, started_at, updated_at)
    values (p_session, p_phone, p_start, p_now, p_now)
    on conflict (session_key) do update set updated_at = excluded.updated_at;
    insert into ussd_effects (session_key, step, action, result, inputs_hash)
    values (p_session, p_step, case when p_again then 'create_pledge_again' else 'create_pledge' end, '{}', p_hash)
    on conflict (session_key, step) do update
        set action = excluded.action, result = '{}', inputs_hash = excluded.inputs_hash, created_at = now()
        where ussd_effects.inputs_hash is distinct from excluded.inputs_hash;
    if not found then
        select result into v_result from ussd_effects where session_key = p_session and step = p_step;
        return v_result;
    end if;
    v_result := pledge_at(p_now, p_project, p_phone, p_amount, 'ussd', p_key, p_again);
    update ussd_effects set result = v_result where session_key = p_session and step = p_step;
    return v_result || jsonb_build_object('fresh', '1');
end $$;
