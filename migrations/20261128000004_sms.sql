-- SMS for migrants abroad: inbound messages handled once, join codes, opt-outs, SMS
-- conversations, exchange rates, and the outbox every outgoing SMS goes through.

-- Inbound messages: what was done with each (the raw request is stored first).
alter table inbound_messages
    add column text        text,
    add column sender_e164 text check (sender_e164 is null or sender_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    add column handled_at  timestamptz,
    add column outcome     text;

-- A short code each household can give a migrant member abroad: `JOIN 4821`.
alter table households add column join_code text unique check (join_code ~ '^[0-9]{4,6}$');

create function new_join_code() returns text language plpgsql volatile as $$
declare
    candidate text;
begin
    loop
        candidate := (floor(random() * 900000) + 100000)::int::text;
        exit when not exists (select 1 from households where join_code = candidate);
    end loop;
    return candidate;
end $$;

create function households_join_code() returns trigger language plpgsql as $$
begin
    if new.join_code is null then
        new.join_code := new_join_code();
    end if;
    return new;
end $$;
create trigger households_join_code before insert on households
    for each row execute function households_join_code();

do $$
declare
    h record;
begin
    for h in select id from households where join_code is null order by id loop
        update households set join_code = new_join_code() where id = h.id;
    end loop;
end $$;

-- Wrong join codes are rate-limited per number.
create table join_attempts (
    id           bigint generated always as identity primary key,
    phone        text not null check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    succeeded    boolean not null,
    attempted_at timestamptz not null
);
create index join_attempts_phone_idx on join_attempts (phone, attempted_at);

-- Numbers that texted STOP: nothing but the STOP confirmation is sent to them until START.
create table sms_optouts (
    phone          text primary key check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    opted_out_at   timestamptz not null
);

-- An SMS conversation: the same menus as USSD, one text per step. SMS has no history, so
-- the inputs so far are kept here; the conversation expires after 30 minutes of silence.
create table sms_conversations (
    phone        text primary key check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    menu         text not null,
    inputs       text[] not null default '{}',
    start_caller jsonb not null,
    results      jsonb not null default '{}',
    started_at   timestamptz not null,
    updated_at   timestamptz not null
);

-- Exchange rates: 1 `base` = `rate` `quote`, from a date on.
create table exchange_rates (
    base       text not null check (base ~ '^[A-Z]{3}$'),
    quote      text not null check (quote ~ '^[A-Z]{3}$'),
    rate       numeric(20, 8) not null check (rate > 0),
    valid_from date not null,
    created_at timestamptz not null default now(),
    primary key (base, quote, valid_from),
    check (base <> quote)
);

-- A pledge keeps what the person said and, when converted, the rate used.
alter table pledges
    add column said_amount   numeric(14, 2) check (said_amount > 0),
    add column said_currency text check (said_currency ~ '^[A-Z]{3}$'),
    add column rate          numeric(20, 8) check (rate > 0),
    add constraint pledges_conversion_complete
        check ((said_currency is null and said_amount is null and rate is null)
            or (said_currency is not null and said_amount is not null and rate is not null));

-- Every outgoing SMS. Written in the same transaction as the change that caused it; sent
-- by the dispatcher, which takes rows with FOR UPDATE SKIP LOCKED under a lease.
create table outbox (
    id              bigint generated always as identity primary key,
    phone           text not null check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    body            text not null check (length(body) > 0),
    encoding        text not null check (encoding in ('gsm7', 'ucs2')),
    segments        integer not null check (segments >= 1),
    provider        text not null,
    kind            text not null default 'reply' check (kind in ('reply', 'stop_confirmation', 'broadcast', 'receipt')),
    status          text not null default 'queued'
                    check (status in ('queued', 'sending', 'sent', 'delivered', 'failed', 'suppressed')),
    attempts        integer not null default 0 check (attempts >= 0),
    next_attempt_at timestamptz not null,
    lease_until     timestamptz,
    provider_msg_id text,
    provider_status text,
    last_error      text,
    inbound_id      bigint references inbound_messages (id),
    created_at      timestamptz not null,
    sent_at         timestamptz,
    delivered_at    timestamptz,
    failed_at       timestamptz,
    updated_at      timestamptz not null
);
create index outbox_due_idx on outbox (next_attempt_at) where status in ('queued', 'sending');
create unique index outbox_provider_msg_idx on outbox (provider, provider_msg_id) where provider_msg_id is not null;
create trigger outbox_no_delete before delete on outbox
    for each row execute function forbid_delete();

-- A pledge said in another currency: `p_amount` is converted to the project's currency with
-- `p_rate`; what the person said is kept beside it.
create function create_pledge(p_project bigint, p_phone text, p_amount numeric, p_channel text, p_key text,
                              p_said_amount numeric, p_said_currency text, p_rate numeric)
returns jsonb
language plpgsql as $$
declare
    v_pledge bigint;
begin
    insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key,
                         said_amount, said_currency, rate)
    select p.id, h.id, ph.phone, p_amount, p.currency, p_channel, p_key, p_said_amount, p_said_currency, p_rate
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
