-- The coordinator phone menu: a PIN (argon2 hash; locked for 15 minutes after 5 wrong
-- PINs, and the lock is a row, so it survives a restart) and a short code on each pledge
-- that the household is shown and a coordinator types to record cash.

alter table coordinators
    add column pin_hash     text,
    add column pin_failures integer not null default 0 check (pin_failures between 0 and 5),
    add column locked_until timestamptz;

create function new_pledge_code() returns text language plpgsql volatile as $$
declare
    candidate text;
begin
    loop
        candidate := (floor(random() * 9000000) + 1000000)::int::text;
        exit when not exists (select 1 from pledges where code = candidate);
    end loop;
    return candidate;
end $$;

alter table pledges add column code text unique check (code ~ '^[0-9]{7}$');

do $$
declare
    p record;
begin
    for p in select id from pledges where code is null order by id loop
        update pledges set code = new_pledge_code() where id = p.id;
    end loop;
end $$;

create function pledges_code() returns trigger language plpgsql as $$
begin
    if new.code is null then
        new.code := new_pledge_code();
    end if;
    return new;
end $$;
create trigger pledges_code before insert on pledges
    for each row execute function pledges_code();

alter table pledges alter column code set not null;

-- The pledge's code joins the texts a pledge shows.
create or replace function create_pledge(p_project bigint, p_phone text, p_amount numeric, p_channel text, p_key text,
                                         p_said_amount numeric, p_said_currency text, p_rate numeric)
returns jsonb
language plpgsql as $$
declare
    v_code text;
begin
    insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key,
                         said_amount, said_currency, rate)
    select p.id, h.id, ph.phone, p_amount, p.currency, p_channel, p_key, p_said_amount, p_said_currency, p_rate
    from projects p
    join households h on h.community_id = p.community_id
    join phones ph on ph.household_id = h.id and ph.phone = p_phone
    where p.id = p_project and p.status = 'open'
    on conflict (idempotency_key) do nothing;
    select code into v_code from pledges where idempotency_key = p_key;
    if v_code is null then
        raise exception 'project % is not open for pledges from this caller', p_project
            using errcode = 'HS001';
    end if;
    return project_total_texts(p_project) || jsonb_build_object('pledge_code', v_code);
end $$;

create or replace function create_pledge(p_project bigint, p_phone text, p_amount numeric, p_channel text, p_key text)
returns jsonb
language sql as $$
    select create_pledge(p_project, p_phone, p_amount, p_channel, p_key, null, null, null)
$$;
