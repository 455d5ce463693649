-- Issue 8, point 10: money recorded once and correctable.
--
-- 1. Reversals. A receipt or a matching disbursement recorded by mistake is corrected by an
--    appended reversal row in the same table: `reverses` names the row it cancels, the
--    amount is the original's negated, `reason` says why, `recorded_by`/`recorded_at` say
--    who and when. Nothing is deleted or edited. Every sum over the table (project_sums,
--    a pledge's outstanding amount, exports) follows reversals without a change, since the
--    reversal row carries the negative amount. A row is reversed at most once (`reverses`
--    is unique) and a reversal is never itself reversed.
-- 2. Receipt numbers are unique per community among receipts that stand (a reversal frees
--    its receipt's number, so the paper receipt can be recorded again correctly).
-- 3. Idempotency keys of the admin API (see src/api/idempotency.rs).

alter table receipts
    add column reverses bigint unique references receipts (id),
    add column reason text check (reason is null or char_length(reason) between 1 and 500);
alter table receipts drop constraint receipts_amount_check;
alter table receipts add constraint receipts_amount_check check (
    (reverses is null and amount > 0 and reason is null)
    or (reverses is not null and amount < 0 and reason is not null));

alter table match_disbursements
    add column reverses bigint unique references match_disbursements (id),
    add column reason text check (reason is null or char_length(reason) between 1 and 500);
alter table match_disbursements drop constraint match_disbursements_amount_check;
alter table match_disbursements add constraint match_disbursements_amount_check check (
    (reverses is null and amount > 0 and reason is null)
    or (reverses is not null and amount < 0 and reason is not null));

-- A receipt reversal mirrors its receipt exactly, once, and never leaves partners' matching
-- already paid above what is due.
create function receipts_reversal_check() returns trigger language plpgsql as $$
declare
    o record;
    p record;
    s record;
    matched_after numeric;
begin
    if new.reverses is null then
        return new;
    end if;
    select * into o from receipts where id = new.reverses for update;
    if not found then
        raise exception 'no receipt %', new.reverses using errcode = 'check_violation';
    end if;
    if o.reverses is not null then
        raise exception 'receipt % is itself a reversal; it cannot be reversed', o.id
            using errcode = 'check_violation';
    end if;
    if exists (select 1 from receipts where reverses = o.id) then
        raise exception 'receipt % is already reversed', o.id using errcode = 'check_violation';
    end if;
    if new.project_id <> o.project_id or new.pledge_id is distinct from o.pledge_id
       or new.household_id is distinct from o.household_id or new.amount <> -o.amount
       or new.currency <> o.currency then
        raise exception 'a reversal of receipt % must mirror it (same project, pledge, household, currency; negated amount)', o.id
            using errcode = 'check_violation';
    end if;
    select * into s from project_sums where project_id = o.project_id for update;
    select * into p from projects where id = o.project_id;
    matched_after := round(case when p.match_cap is null then (s.received - o.amount) * p.match_ratio
                                else least((s.received - o.amount) * p.match_ratio, p.match_cap) end, 2);
    if matched_after < s.disbursed then
        raise exception 'reversing receipt % would leave matching already disbursed (%) above what is due (%); reverse the disbursement first',
            o.id, s.disbursed, matched_after using errcode = 'check_violation';
    end if;
    new.receipt_no := null;
    return new;
end $$;
create trigger receipts_reversal before insert on receipts
    for each row execute function receipts_reversal_check();

create function match_disbursements_reversal_check() returns trigger language plpgsql as $$
declare
    o record;
begin
    if new.reverses is null then
        return new;
    end if;
    select * into o from match_disbursements where id = new.reverses for update;
    if not found then
        raise exception 'no disbursement %', new.reverses using errcode = 'check_violation';
    end if;
    if o.reverses is not null then
        raise exception 'disbursement % is itself a reversal; it cannot be reversed', o.id
            using errcode = 'check_violation';
    end if;
    if exists (select 1 from match_disbursements where reverses = o.id) then
        raise exception 'disbursement % is already reversed', o.id using errcode = 'check_violation';
    end if;
    if new.project_id <> o.project_id or new.amount <> -o.amount or new.currency <> o.currency then
        raise exception 'a reversal of disbursement % must mirror it (same project and currency; negated amount)', o.id
            using errcode = 'check_violation';
    end if;
    return new;
end $$;
create trigger match_disbursements_reversal before insert on match_disbursements
    for each row execute function match_disbursements_reversal_check();

-- A pledge's status follows its receipts both ways now: a reversal that leaves it short
-- takes a received pledge back to pledged.
create or replace function pledges_status_from_events() returns trigger language plpgsql as $$
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
        elsif got < p.amount and p.status = 'received' then
            update pledges set status = 'pledged', status_changed_at = null, status_changed_by = null
             where id = new.pledge_id;
        end if;
    else
        update pledges set status = 'cancelled', status_changed_at = new.cancelled_at, status_changed_by = new.cancelled_by
         where id = new.pledge_id;
    end if;
    return null;
end $$;

create or replace function pledges_status_consistent() returns trigger language plpgsql as $$
begin
    if new.status is distinct from old.status then
        if new.status = 'cancelled' and not exists (select 1 from pledge_cancellations where pledge_id = new.id) then
            raise exception 'pledge % has no cancellation', new.id using errcode = 'check_violation';
        end if;
        if new.status = 'received'
           and coalesce((select sum(amount) from receipts where pledge_id = new.id), 0) < new.amount then
            raise exception 'pledge % is not fully received', new.id using errcode = 'check_violation';
        end if;
        -- back to pledged only from received, when reversals left it short
        if new.status = 'pledged'
           and (old.status <> 'received'
                or coalesce((select sum(amount) from receipts where pledge_id = new.id), 0) >= new.amount) then
            raise exception 'pledge % cannot go back to pledged', new.id using errcode = 'check_violation';
        end if;
    end if;
    if new.amount <> old.amount or new.project_id <> old.project_id or new.household_id <> old.household_id then
        raise exception 'a pledge''s amount, project and household never change' using errcode = 'check_violation';
    end if;
    return new;
end $$;

-- Cancelling: only a pledge nothing (net of reversals) was received for.
create or replace function pledge_cancellations_check() returns trigger language plpgsql as $$
begin
    perform 1 from pledges where id = new.pledge_id for update;
    if coalesce((select sum(amount) from receipts where pledge_id = new.pledge_id), 0) <> 0 then
        raise exception 'pledge % already has money received; it cannot be cancelled', new.pledge_id
            using errcode = 'check_violation';
    end if;
    return new;
end $$;

-- Receipt numbers: unique per community (case-insensitive, trimmed) among receipts that
-- stand. A side table, since a unique index cannot span receipts and projects.
create table receipt_numbers (
    community_id bigint not null references communities (id),
    receipt_no   text not null,
    receipt_id   bigint not null unique references receipts (id),
    primary key (community_id, receipt_no)
);

-- Existing duplicates do not stop the migration: the first receipt (lowest id) with a
-- number keeps it; later ones with the same number stay as they are but hold no claim to
-- it (listed by the notice below, for a coordinator to review and reverse if wrong).
insert into receipt_numbers (community_id, receipt_no, receipt_id)
select distinct on (p.community_id, upper(btrim(r.receipt_no)))
       p.community_id, upper(btrim(r.receipt_no)), r.id
from receipts r join projects p on p.id = r.project_id
where r.receipt_no is not null and btrim(r.receipt_no) <> ''
order by p.community_id, upper(btrim(r.receipt_no)), r.id;

do $$
declare
    dups bigint;
begin
    select count(*) into dups from receipts r
    where r.receipt_no is not null and btrim(r.receipt_no) <> ''
      and not exists (select 1 from receipt_numbers n where n.receipt_id = r.id);
    if dups > 0 then
        raise notice '% receipts repeat a receipt number already used in their community; they are kept but hold no claim to the number (select * from receipts r where receipt_no is not null and not exists (select 1 from receipt_numbers n where n.receipt_id = r.id))', dups;
    end if;
end $$;

create function receipt_numbers_claim() returns trigger language plpgsql as $$
begin
    if new.reverses is not null then
        delete from receipt_numbers where receipt_id = new.reverses;
    elsif new.receipt_no is not null and btrim(new.receipt_no) <> '' then
        insert into receipt_numbers (community_id, receipt_no, receipt_id)
        select community_id, upper(btrim(new.receipt_no)), new.id from projects where id = new.project_id;
    end if;
    return null;
end $$;
create trigger receipts_number after insert on receipts
    for each row execute function receipt_numbers_claim();

-- Idempotency keys of admin-API POSTs: one row per (token, key). Claimed before the request
-- runs (status null: in progress), then holding the answer to replay. Pruned after 24 hours.
create table api_idempotency (
    token_sha256 text not null,
    key          text not null check (char_length(key) between 1 and 200),
    request_hash text not null,
    status       smallint,
    body         bytea,
    created_at   timestamptz not null,
    primary key (token_sha256, key)
);
create index api_idempotency_created_idx on api_idempotency (created_at);
