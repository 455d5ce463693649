-- Issue 12: pledges to one project no longer commit one after another.
--
-- Every pledge updated its project's one `project_sums` row and its hour's and week's rows
-- in `pledge_hour_sums` / `pledge_week_sums`, and held those row locks until its commit was
-- flushed: the pledges of one project (in the benchmark, all of them) could not commit
-- faster than one flush after another. The sums that pledges write are now split over 8
-- rows ("stripes") per project, hour or week; a pledge writes the stripe of its id
-- (`pledge_stripe`), so consecutive pledges write different rows, and readers add the
-- stripes up (`project_totals`, the overview's weeks: both already sum).
--
-- Each stripe is the sum of its own pledges, so every check a row had still holds per row:
-- a receipt for a pledge takes its amount from the outstanding of the pledge's stripe (never
-- below zero, as a pledge never receives more than its amount), and a cancellation takes
-- the pledge out of its stripe. What receipts and partners' disbursements write (received,
-- disbursed) stays in `project_sums`, one row per project: those are rare, and the checks
-- that compare them (matching never above what is due, a reached target noted once) rely on
-- that one row's lock to see each other.

create function pledge_stripe(p_pledge bigint) returns smallint
language sql immutable parallel safe as $$ select (p_pledge % 8)::smallint $$;

-- 1. A project's pledged and outstanding: 8 rows a project, made with the project.
create table project_pledge_sums (
    project_id  bigint not null references projects (id),
    stripe      smallint not null check (stripe between 0 and 7),
    pledged     numeric(14, 2) not null default 0 check (pledged >= 0),
    outstanding numeric(14, 2) not null default 0 check (outstanding >= 0),
    primary key (project_id, stripe)
);
create trigger project_pledge_sums_no_delete before delete on project_pledge_sums
    for each row execute function forbid_delete();

-- From the pledges and receipts themselves (what `project_sums` was kept equal to):
-- outstanding is what was pledged (not cancelled) less what was received against it.
with p as (
    select project_id, pledge_stripe(id) as stripe,
           coalesce(sum(amount) filter (where status <> 'cancelled'), 0) as pledged
      from pledges group by 1, 2
), r as (
    select project_id, pledge_stripe(pledge_id) as stripe, sum(amount) as received
      from receipts where pledge_id is not null group by 1, 2
)
insert into project_pledge_sums (project_id, stripe, pledged, outstanding)
select pr.id, s.stripe, coalesce(p.pledged, 0), coalesce(p.pledged, 0) - coalesce(r.received, 0)
  from projects pr
 cross join generate_series(0, 7) as s(stripe)
  left join p on p.project_id = pr.id and p.stripe = s.stripe
  left join r on r.project_id = pr.id and r.stripe = s.stripe;

-- Said, not hidden: a project whose kept sums had drifted from its pledges now shows what
-- its pledges say.
do $$
declare
    n bigint;
begin
    select count(*) into n
      from project_sums s
      join (select project_id, sum(pledged) as pledged, sum(outstanding) as outstanding
              from project_pledge_sums group by 1) x using (project_id)
     where s.pledged <> x.pledged or s.outstanding <> x.outstanding;
    if n > 0 then
        raise warning '% project(s) had pledged or outstanding sums that differed from their pledges; recomputed', n;
    end if;
end $$;

create or replace function project_sums_new_project() returns trigger language plpgsql as $$
begin
    insert into project_sums (project_id) values (new.id);
    insert into project_pledge_sums (project_id, stripe)
    select new.id, s from generate_series(0, 7) s;
    return new;
end $$;

-- (a pledge's project and amount never change: see pledges_status_consistent)
create or replace function project_sums_pledges() returns trigger language plpgsql as $$
declare
    before_amount numeric := 0;
    after_amount numeric := case when new.status <> 'cancelled' then new.amount else 0 end;
begin
    if tg_op = 'UPDATE' and old.status <> 'cancelled' then
        before_amount := old.amount;
    end if;
    -- a pledge received (pledged -> received) changes neither sum
    if after_amount = before_amount then
        return null;
    end if;
    -- one update with the difference, so no sum passes through a negative value
    update project_pledge_sums
       set pledged = pledged + after_amount - before_amount,
           outstanding = outstanding + after_amount - before_amount
     where project_id = new.project_id and stripe = pledge_stripe(new.id);
    if not found then
        raise exception 'project % has no pledge sums', new.project_id using errcode = 'check_violation';
    end if;
    return null;
end $$;

-- Received in the project's one row (its lock orders receipts, reversals and
-- disbursements, and fires the target-reached check); a receipt for a pledge takes its
-- amount from that pledge's stripe's outstanding (a reversal, negative, puts it back).
create or replace function project_sums_receipts() returns trigger language plpgsql as $$
begin
    update project_sums set received = received + new.amount where project_id = new.project_id;
    if new.pledge_id is not null then
        update project_pledge_sums set outstanding = outstanding - new.amount
         where project_id = new.project_id and stripe = pledge_stripe(new.pledge_id);
        if not found then
            raise exception 'project % has no pledge sums', new.project_id using errcode = 'check_violation';
        end if;
    end if;
    return null;
end $$;

-- Same columns, names and types as before; pledged and outstanding are the stripes' sums.
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
       ps.pledged,
       ps.outstanding,
       s.received,
       m.matched,
       (s.received + m.matched)::numeric(14, 2) as matched_total,
       round(100 * (s.received + m.matched) / p.target, 1) as percent,
       s.disbursed,
       (m.matched - s.disbursed)::numeric(14, 2) as match_due
from projects p
join project_sums s on s.project_id = p.id
cross join lateral (
    select coalesce(sum(x.pledged), 0)::numeric(14, 2) as pledged,
           coalesce(sum(x.outstanding), 0)::numeric(14, 2) as outstanding
      from project_pledge_sums x
     where x.project_id = p.id
) ps
cross join lateral (
    select round(case when p.match_cap is null then s.received * p.match_ratio
                      else least(s.received * p.match_ratio, p.match_cap) end, 2)::numeric(14, 2)
           as matched
) m;

-- No reader is left for the old columns; dropping them makes any forgotten one fail loudly
-- instead of reading a sum that no longer moves.
alter table project_sums drop column pledged, drop column outstanding;

-- 2. The hours and weeks: the stripe joins the key. Rebuilt from the pledges, as every
--    pledge's rows must be in its own stripe for a later cancellation to take it out of the
--    right row (TRUNCATE, not DELETE: the rows are never deleted one by one, and the
--    rebuild below puts every one back, except hours and weeks that count nothing).
truncate pledge_hour_sums, pledge_week_sums;
alter table pledge_hour_sums
    add column stripe smallint not null check (stripe between 0 and 7),
    drop constraint pledge_hour_sums_pkey,
    add primary key (project_id, hour, currency, stripe);
alter table pledge_week_sums
    add column stripe smallint not null check (stripe between 0 and 7),
    drop constraint pledge_week_sums_pkey,
    add primary key (project_id, week, currency, stripe);

insert into pledge_hour_sums (project_id, hour, currency, stripe, pledges, amount)
select project_id, date_trunc('hour', created_at, 'UTC'), currency, pledge_stripe(id), count(*), sum(amount)
  from pledges
 where status <> 'cancelled'
 group by 1, 2, 3, 4;
insert into pledge_week_sums (project_id, week, currency, stripe, pledges, amount)
select project_id, date_trunc('week', hour, 'UTC'), currency, stripe, sum(pledges), sum(amount)
  from pledge_hour_sums
 group by 1, 2, 3, 4;

create or replace function pledge_hour_sums_pledges() returns trigger language plpgsql as $$
begin
    if tg_op = 'UPDATE'
       and (old.status <> 'cancelled') = (new.status <> 'cancelled')
       and old.project_id = new.project_id and old.created_at = new.created_at
       and old.currency = new.currency and old.amount = new.amount then
        return null;
    end if;
    if tg_op in ('UPDATE', 'DELETE') and old.status <> 'cancelled' then
        update pledge_hour_sums
           set pledges = pledges - 1, amount = amount - old.amount
         where project_id = old.project_id
           and hour = date_trunc('hour', old.created_at, 'UTC')
           and currency = old.currency
           and stripe = pledge_stripe(old.id);
        update pledge_week_sums
           set pledges = pledges - 1, amount = amount - old.amount
         where project_id = old.project_id
           and week = date_trunc('week', old.created_at, 'UTC')
           and currency = old.currency
           and stripe = pledge_stripe(old.id);
    end if;
    if tg_op in ('INSERT', 'UPDATE') and new.status <> 'cancelled' then
        insert into pledge_hour_sums as s (project_id, hour, currency, stripe, pledges, amount)
        values (new.project_id, date_trunc('hour', new.created_at, 'UTC'), new.currency,
                pledge_stripe(new.id), 1, new.amount)
        on conflict (project_id, hour, currency, stripe)
        do update set pledges = s.pledges + 1, amount = s.amount + excluded.amount;
        insert into pledge_week_sums as s (project_id, week, currency, stripe, pledges, amount)
        values (new.project_id, date_trunc('week', new.created_at, 'UTC'), new.currency,
                pledge_stripe(new.id), 1, new.amount)
        on conflict (project_id, week, currency, stripe)
        do update set pledges = s.pledges + 1, amount = s.amount + excluded.amount;
    end if;
    return null;
end $$;
