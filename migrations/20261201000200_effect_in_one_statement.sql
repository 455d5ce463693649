-- Issue 12: one database round trip per USSD effect that is one statement (the pledge).
--
-- Until now every effect ran BEGIN (with its timeouts), the action, the record of its step,
-- COMMIT: four round trips, holding the pledge's row locks (the project's sums) through the
-- last two and the WAL flush. An effect whose action is one statement now runs with the
-- record of its step in that one statement, which commits on its own.

-- The record of an effect's step, as `ussd_sessions::record_step` made it in a statement of
-- its own (which now calls this): makes sure the session row exists and claims the step for
-- this history (the SHA-256 of its inputs) with the effect's result, taking it over from
-- another history. False when the step is already recorded for this history (a repeated or
-- concurrent hop recorded it first).
create function ussd_record_step(p_session text, p_phone text, p_start jsonb, p_now timestamptz,
                                 p_step integer, p_action text, p_hash bytea, p_result jsonb)
returns boolean
language plpgsql as $$
begin
    insert into ussd_sessions (session_key, phone, start_caller, started_at, updated_at)
    values (p_session, p_phone, p_start, p_now, p_now)
    on conflict (session_key) do update set updated_at = excluded.updated_at;
    insert into ussd_effects (session_key, step, action, result, inputs_hash)
    values (p_session, p_step, p_action, p_result, p_hash)
    on conflict (session_key, step) do update
        set action = excluded.action, result = excluded.result,
            inputs_hash = excluded.inputs_hash, created_at = now()
        where ussd_effects.inputs_hash is distinct from excluded.inputs_hash;
    return found;
end $$;

-- The end of an effect run in one statement: `p_result` is the action's result, computed
-- by the same statement (an argument, so before this runs). Records the step as
-- `ussd_record_step`; raises HS002 when the step is already recorded for this history (the
-- statement, the action's rows with it, is rolled back and the recorded result is the
-- answer), and 57014 (query_canceled, as a statement timeout) when the statement ends more
-- than `p_ms_left` ms after it started: the hop has been answered "busy" by then, so
-- nothing may stay done. The lock waits inside are bounded by a `lock_timeout` of the same
-- time, set by the statement itself.
create function ussd_step_done(p_session text, p_phone text, p_start jsonb, p_now timestamptz,
                               p_step integer, p_action text, p_hash bytea, p_ms_left integer,
                               p_result jsonb)
returns jsonb
language plpgsql as $$
begin
    if not ussd_record_step(p_session, p_phone, p_start, p_now, p_step, p_action, p_hash, p_result) then
        raise exception 'step % of the session is recorded for these inputs already', p_step
            using errcode = 'HS002';
    end if;
    if clock_timestamp() > statement_timestamp() + p_ms_left * interval '1 millisecond' then
        raise exception 'the effect ended after the hop''s deadline' using errcode = '57014';
    end if;
    return p_result;
end $$;
