-- A pledge from a phone in one round trip. The pledge hop is the only USSD hop that writes;
-- as one server-side call (instead of BEGIN, claim, insert, totals, record, COMMIT from the
-- application) it holds its locks for one short statement and waits for the network once.

-- How an amount is shown on a phone screen: whole amounts without decimals (1500), others
-- with two (1500.50). Mirrors `domain::money::format_amount` (a test checks they agree).
create function screen_amount(x numeric) returns text
language sql immutable strict as $$
    select case when round(x, 2) = trunc(x) then trunc(x)::text
                else round(x, 2)::numeric(20, 2)::text end
$$;

-- A project's totals as screen texts, from the one totals view.
create function project_total_texts(p_project bigint) returns jsonb
language sql stable as $$
    select jsonb_build_object(
        'pledged', screen_amount(t.pledged),
        'received', screen_amount(t.received),
        'matched', screen_amount(t.matched),
        'matched_total', screen_amount(t.matched_total),
        'target', screen_amount(t.target),
        'percent', trim_scale(t.percent)::text,
        'currency', t.currency)
    from project_totals t where t.project_id = p_project
$$;

-- Records a pledge once per idempotency key: the caller's household must belong to the
-- project's community and the project must be open (else SQLSTATE HS001). Returns the
-- project's totals after the pledge.
create function create_pledge(p_project bigint, p_phone text, p_amount numeric, p_channel text, p_key text)
returns jsonb
language plpgsql as $$
declare
    v_pledge bigint;
begin
    insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
    select p.id, h.id, ph.phone, p_amount, p.currency, p_channel, p_key
    from projects p
    join households h on h.community_id = p.community_id
    join phones ph on ph.household_id = h.id and ph.phone = p_phone
    where p.id = p_project and p.status = 'open'
    on conflict (idempotency_key) do nothing
    returning id into v_pledge;
    if v_pledge is null and not exists (select 1 from pledges where idempotency_key = p_key) then
        raise exception 'project % is not open for pledges from this caller', p_project
            using errcode = 'HS001';
    end if;
    return project_total_texts(p_project);
end $$;

-- The pledge step of a USSD session: claims (session, step), pledges, records the result.
-- A repeated or concurrent hop for the same step gets the recorded result.
create function ussd_pledge(p_session text, p_phone text, p_start jsonb, p_now timestamptz, p_step integer,
                            p_project bigint, p_amount numeric, p_key text)
returns jsonb
language plpgsql as $$
declare
    v_result jsonb;
begin
    insert into ussd_sessions (session_key, phone, start_caller, started_at, updated_at)
    values (p_session, p_phone, p_start, p_now, p_now)
    on conflict (session_key) do update set updated_at = excluded.updated_at;
    insert into ussd_effects (session_key, step, action, result)
    values (p_session, p_step, 'create_pledge', '{}')
    on conflict do nothing;
    if not found then
        select result into v_result from ussd_effects where session_key = p_session and step = p_step;
        return v_result;
    end if;
    v_result := create_pledge(p_project, p_phone, p_amount, 'ussd', p_key);
    update ussd_effects set result = v_result where session_key = p_session and step = p_step;
    return v_result;
end $$;
