-- Issue 11, point 1: a pledge made on the menus (USSD, or an SMS conversation) is told to
-- the household by SMS at once, with its code, amount, project and how to pay. The SMS is
-- queued by the statement that makes the pledge (no extra round trip for a USSD hop), in the
-- same transaction, and at most once per pledge (keyed by it): a retried hop, or a pledge
-- whose COMMIT completes after its hop was answered "busy", sends it once.

alter table outbox add column pledge_id bigint references pledges (id);
create unique index outbox_pledge_once on outbox (pledge_id) where pledge_id is not null;

-- `p_sms`: the SMS as the application rendered it around the code the pledge gets,
-- {before, after, encoding, segments, provider}; null sends none. The body is
-- before || code || after (the code is 7 digits: measured in advance by the application).
-- Not sent when the pledge is not made (the answer asks first). A number that texted STOP
-- gets it stored as `suppressed`, as every outbox row.
create function pledge_at(p_now timestamptz, p_project bigint, p_phone text, p_amount numeric,
                          p_channel text, p_key text, p_again boolean, p_sms jsonb)
returns jsonb
language plpgsql as $$
declare
    v_result jsonb;
begin
    v_result := pledge_at(p_now, p_project, p_phone, p_amount, p_channel, p_key, p_again);
    if p_sms is null or v_result ? 'ask' then
        return v_result;
    end if;
    insert into outbox (phone, body, encoding, segments, provider, kind, status, next_attempt_at,
                        created_at, updated_at, pledge_id)
    select p_phone, (p_sms ->> 'before') || pl.code || (p_sms ->> 'after'), p_sms ->> 'encoding',
           (p_sms ->> 'segments')::integer, p_sms ->> 'provider', 'reply',
           case when exists (select 1 from sms_optouts where phone = p_phone)
                then 'suppressed' else 'queued' end,
           p_now, p_now, p_now, pl.id
    from pledges pl
    where pl.idempotency_key = p_key
    on conflict (pledge_id) where pledge_id is not null do nothing;
    return v_result;
end $$;
