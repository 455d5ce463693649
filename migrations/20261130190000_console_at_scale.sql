-- The console at 1,000,000 pledges (issue 10's benchmark, docs/PERFORMANCE.md §7).
--
-- 1. A project's page lists its newest pledges and receipts a page at a time, by keyset
--    ("older" carries the last row's (created_at, id) or id). Without these indexes
--    PostgreSQL read every pledge and receipt of the project (300,000 and 100,000 for the
--    busiest generated project) to sort them for 21 rows.
create index pledges_project_recent on pledges (project_id, created_at desc, id desc);
create index receipts_project_recent on receipts (project_id, id desc);

-- 2. Pledges per project, UTC week (starting Monday 00:00 UTC) and currency, kept by the
--    same trigger as `pledge_hour_sums`, so that the overview's 12-week chart reads 12 rows a
--    project and currency instead of 2,016 hours.
--
--    The chart's weeks are the programme's (Monday to Sunday in `HASHAR_TIMEZONE`, a setting
--    the database does not know), so these rows are keyed by UTC weeks, a fact about the
--    pledge alone, and the reader corrects each boundary with the few hours between the
--    local Monday and the nearest UTC Monday (5 hours for Dushanbe) from `pledge_hour_sums`:
--    exact for every zone with a whole-hour offset, as the hours are
--    (src/store/overview.rs, `pledges_by_week`).
create table pledge_week_sums (
    project_id bigint not null references projects (id),
    -- the Monday 00:00 UTC the week starts at
    week       timestamptz not null check (week = date_trunc('week', week, 'UTC')),
    currency   text not null check (currency ~ '^[A-Z]{3}$'),
    pledges    bigint not null default 0 check (pledges >= 0),
    amount     numeric(16, 2) not null default 0 check (amount >= 0),
    primary key (project_id, week, currency)
);
-- The chart reads a window of weeks over all the projects of a scope.
create index pledge_week_sums_week on pledge_week_sums (week) include (project_id, currency, pledges, amount);

create trigger pledge_week_sums_no_delete before delete on pledge_week_sums
    for each row execute function forbid_delete();

-- From the hours (the same pledges, already summed): the week an hour's start falls in.
insert into pledge_week_sums (project_id, week, currency, pledges, amount)
select project_id, date_trunc('week', hour, 'UTC'), currency, sum(pledges), sum(amount)
  from pledge_hour_sums
 group by 1, 2, 3;

-- The hour's row and the week's row, alike: the old row out (when it was counted) and the
-- new one in (when it is counted). An update that leaves what they count as it was (a
-- pledge received: `pledged` -> `received`) writes neither: it used to take its hour's
-- count out and put it back.
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
           and currency = old.currency;
        update pledge_week_sums
           set pledges = pledges - 1, amount = amount - old.amount
         where project_id = old.project_id
           and week = date_trunc('week', old.created_at, 'UTC')
           and currency = old.currency;
    end if;
    if tg_op in ('INSERT', 'UPDATE') and new.status <> 'cancelled' then
        insert into pledge_hour_sums as s (project_id, hour, currency, pledges, amount)
        values (new.project_id, date_trunc('hour', new.created_at, 'UTC'), new.currency, 1, new.amount)
        on conflict (project_id, hour, currency)
        do update set pledges = s.pledges + 1, amount = s.amount + excluded.amount;
        insert into pledge_week_sums as s (project_id, week, currency, pledges, amount)
        values (new.project_id, date_trunc('week', new.created_at, 'UTC'), new.currency, 1, new.amount)
        on conflict (project_id, week, currency)
        do update set pledges = s.pledges + 1, amount = s.amount + excluded.amount;
    end if;
    return null;
end $$;
