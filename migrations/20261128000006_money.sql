-- Recording money. Every change is an appended row with who and when: receipts (money that
-- arrived, for a pledge or without one), cancellations, and the partners' matching
-- disbursements. A pledge's status is derived from those rows by triggers, and the rules
-- hold in the database: no receiving more than was pledged, no receiving a cancelled
-- pledge, no cancelling money already received, no matching beyond what is due (the cap).

create table pledge_cancellations (
    pledge_id    bigint primary key references pledges (id),
    reason       text not null check (char_length(reason) between 1 and 500),
    cancelled_by text not null,
    cancelled_at timestamptz not null default now()
);
create trigger pledge_cancellations_no_delete before delete on pledge_cancellations
    for each row execute function forbid_delete();

create table match_disbursements (
    id           bigint generated always as identity primary key,
    project_id   bigint not null references projects (id),
    amount       numeric(14, 2) not null check (amount > 0),
    currency     text not null check (currency ~ '^[A-Z]{3}$'),
    disbursed_on date not null,
    partner      text not null check (char_length(partner) between 1 and 200),
    reference    text,
    recorded_by  text not null,
    recorded_at  timestamptz not null default now()
);
create index match_disbursements_project_idx on match_disbursements (project_id);
create trigger match_disbursements_no_delete before delete on match_disbursements
    for each row execute function forbid_delete();

-- Receipts and disbursements are appended, never edited.
create function forbid_update() returns trigger language plpgsql as $$
begin
    raise exception '% rows are never changed; record a correction instead', tg_table_name
        using errcode = 'restrict_violation';
end $$;
create trigger receipts_no_update before update on receipts
    for each row execute function forbid_update();
create trigger match_disbursements_no_update before update on match_disbursements
    for each row execute function forbid_update();

-- Sums: outstanding is what was pledged (not cancelled) and not yet received against
-- pledges; disbursed is what partners paid.
alter table project_sums add column disbursed numeric(14, 2) not null default 0 check (disbursed >= 0);

create or replace function project_sums_pledges() returns trigger language plpgsql as $$
declare
    before_amount numeric := 0;
    after_amount numeric := case when new.status <> 'cancelled' then new.amount else 0 end;
begin
    -- (a pledge's project and amount never change: see pledges_status_consistent)
    if tg_op = 'UPDATE' and old.status <> 'cancelled' then
        before_amount := old.amount;
    end if;
    -- one update with the difference, so no sum passes through a negative value
    update project_sums
       set pledged = pledged + after_amount - before_amount,
           outstanding = outstanding + after_amount - before_amount
     where project_id = new.project_id;
    return null;
end $$;

create or replace function project_sums_receipts() returns trigger language plpgsql as $$
begin
    update project_sums
       set received = received + new.amount,
           outstanding = outstanding - case when new.pledge_id is not null then new.amount else 0 end
     where project_id = new.project_id;
    return null;
end $$;

create function project_sums_disbursements() returns trigger language plpgsql as $$
begin
    update project_sums set disbursed = disbursed + new.amount where project_id = new.project_id;
    return null;
end $$;
create trigger match_disbursements_sums after insert on match_disbursements
    for each row execute function project_sums_disbursements();

-- Recompute every sum under the new definitions.
update project_sums s set
    pledged = coalesce((select sum(amount) from pledges where project_id = s.project_id and status <> 'cancelled'), 0),
    outstanding = coalesce((select sum(amount) from pledges where project_id = s.project_id and status <> 'cancelled'), 0)
                - coalesce((select sum(amount) from receipts where project_id = s.project_id and pledge_id is not null), 0),
    received = coalesce((select sum(amount) from receipts where project_id = s.project_id), 0),
    disbursed = 0;

-- A receipt for a pledge: same project, pledge not cancelled, never more than pledged.
create function receipts_pledge_check() returns trigger language plpgsql as $$
declare
    p record;
    already numeric;
begin
    if new.pledge_id is null then
        return new;
    end if;
    select * into p from pledges where id = new.pledge_id for update;
    if p.project_id <> new.project_id then
        raise exception 'receipt project % is not the pledge''s project %', new.project_id, p.project_id
            using errcode = 'check_violation';
    end if;
    if p.status = 'cancelled' then
        raise exception 'pledge % is cancelled', new.pledge_id using errcode = 'check_violation';
    end if;
    select coalesce(sum(amount), 0) into already from receipts where pledge_id = new.pledge_id;
    if already + new.amount > p.amount then
        raise exception 'receipts for pledge % would exceed its amount (% + % > %)', new.pledge_id, already, new.amount, p.amount
            using errcode = 'check_violation';
    end if;
    new.household_id := coalesce(new.household_id, p.household_id);
    return new;
end $$;
create trigger receipts_pledge before insert on receipts
    for each row execute function receipts_pledge_check();

-- The pledge's status follows its receipts and cancellation.
create function pledges_status_from_events() returns trigger language plpgsql as $$
declare
    p record;
    got numeric;
begin
    if tg_table_name = 'receipts' then
        if new.pledge_id is null then
            return null;
        end if;
        select * into p from pledges where id = new.pledge_id;
        select coalesce(sum(amount), 0) into got from receipts where pledge_id = new.pledge_id;
        if got >= p.amount and p.status = 'pledged' then
            update pledges set status = 'received', status_changed_at = new.recorded_at, status_changed_by = new.recorded_by
             where id = new.pledge_id;
        end if;
    else
        update pledges set status = 'cancelled', status_changed_at = new.cancelled_at, status_changed_by = new.cancelled_by
         where id = new.pledge_id;
    end if;
    return null;
end $$;
create trigger receipts_pledge_status after insert on receipts
    for each row execute function pledges_status_from_events();

-- Cancelling: only a pledge nothing was received for.
create function pledge_cancellations_check() returns trigger language plpgsql as $$
begin
    perform 1 from pledges where id = new.pledge_id for update;
    if exists (select 1 from receipts where pledge_id = new.pledge_id) then
        raise exception 'pledge % already has money received; it cannot be cancelled', new.pledge_id
            using errcode = 'check_violation';
    end if;
    return new;
end $$;
create trigger pledge_cancellations_check before insert on pledge_cancellations
    for each row execute function pledge_cancellations_check();
create trigger pledge_cancellations_status after insert on pledge_cancellations
    for each row execute function pledges_status_from_events();

-- A status may only say what the rows say.
create function pledges_status_consistent() returns trigger language plpgsql as $$
begin
    if new.status is distinct from old.status then
        if new.status = 'cancelled' and not exists (select 1 from pledge_cancellations where pledge_id = new.id) then
            raise exception 'pledge % has no cancellation', new.id using errcode = 'check_violation';
        end if;
        if new.status = 'received'
           and coalesce((select sum(amount) from receipts where pledge_id = new.id), 0) < new.amount then
            raise exception 'pledge % is not fully received', new.id using errcode = 'check_violation';
        end if;
        if new.status = 'pledged' then
            raise exception 'pledge % cannot go back to pledged', new.id using errcode = 'check_violation';
        end if;
    end if;
    if new.amount <> old.amount or new.project_id <> old.project_id or new.household_id <> old.household_id then
        raise exception 'a pledge''s amount, project and household never change' using errcode = 'check_violation';
    end if;
    return new;
end $$;
create trigger pledges_status_consistent before update on pledges
    for each row execute function pledges_status_consistent();

-- Partners' matching: never beyond what is due (received × ratio, within the cap).
create function match_disbursements_check() returns trigger language plpgsql as $$
declare
    t record;
begin
    perform 1 from project_sums where project_id = new.project_id for update;
    select * into t from project_totals where project_id = new.project_id;
    if new.currency <> t.currency then
        raise exception 'disbursement currency % differs from the project currency', new.currency
            using errcode = 'check_violation';
    end if;
    if t.disbursed + new.amount > t.matched then
        raise exception 'matching for project % would exceed what is due (% + % > %)',
            new.project_id, t.disbursed, new.amount, t.matched using errcode = 'check_violation';
    end if;
    return new;
end $$;

create or replace view project_totals as
select p.id as project_id,
       p.community_id,
       p.code,
       p.name_tg, p.name_ru, p.name_en,
       p.currency,
       p.target,
       p.match_ratio,
       p.match_cap,
       p.status,
       s.pledged,
       s.outstanding,
       s.received,
       m.matched,
       (s.received + m.matched)::numeric(14, 2) as matched_total,
       round(100 * (s.received + m.matched) / p.target, 1) as percent,
       s.disbursed,
       (m.matched - s.disbursed)::numeric(14, 2) as match_due
from projects p
join project_sums s on s.project_id = p.id
cross join lateral (
    select round(case when p.match_cap is null then s.received * p.match_ratio
                      else least(s.received * p.match_ratio, p.match_cap) end, 2)::numeric(14, 2)
           as matched
) m;

create trigger match_disbursements_check before insert on match_disbursements
    for each row execute function match_disbursements_check();

-- A pledge starts as pledged; received and cancelled come only from the rows above.
create function pledges_start_pledged() returns trigger language plpgsql as $$
begin
    if new.status <> 'pledged' then
        raise exception 'a new pledge is pledged; receipts and cancellations change that'
            using errcode = 'check_violation';
    end if;
    return new;
end $$;
create trigger pledges_start_pledged before insert on pledges
    for each row execute function pledges_start_pledged();
