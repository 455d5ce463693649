-- Pledges per project, UTC hour and currency, kept by a trigger, so that the console's
-- pledges-per-week chart reads a few rows per project and week instead of summing
-- `pledges` (console design §7: no console query sums pledges).
--
-- Why hours in UTC, not weeks or days in the programme's time zone: the week a pledge falls
-- in depends on `HASHAR_TIMEZONE`, a setting of the application that the database does not
-- know and that may change. Rows keyed by a local day or week would be wrong from the
-- moment the setting changes (and would need a rebuild to be right again). A UTC hour is a
-- fact about the pledge alone: the reader sums the hours in [local Monday 00:00, next
-- Monday 00:00) converted to UTC, which is exact for every time zone whose offset is a
-- whole number of hours (Tajikistan's UTC+5 and its neighbours', Russia's, Turkey's),
-- whatever the setting is and however often it changes. A zone with a half-hour offset
-- (e.g. Afghanistan, UTC+4:30) would count the pledges of the half hour around midnight
-- in the neighbouring week. Cost: at most 24 × 7 rows per project and week, and only
-- hours that had a pledge have a row.
--
-- Counted: pledges not cancelled, as the chart shows them.

create table pledge_hour_sums (
    project_id bigint not null references projects (id),
    -- the start of the hour, in UTC
    hour       timestamptz not null check (hour = date_trunc('hour', hour, 'UTC')),
    currency   text not null check (currency ~ '^[A-Z]{3}$'),
    pledges    bigint not null default 0 check (pledges >= 0),
    amount     numeric(16, 2) not null default 0 check (amount >= 0),
    primary key (project_id, hour, currency)
);
-- The chart reads a window of hours over all the projects of a scope.
create index pledge_hour_sums_hour on pledge_hour_sums (hour) include (project_id, currency, pledges, amount);

create trigger pledge_hour_sums_no_delete before delete on pledge_hour_sums
    for each row execute function forbid_delete();

insert into pledge_hour_sums (project_id, hour, currency, pledges, amount)
select project_id, date_trunc('hour', created_at, 'UTC'), currency, count(*), sum(amount)
  from pledges
 where status <> 'cancelled'
 group by 1, 2, 3;

-- Takes the old row out (when it was counted) and puts the new one in (when it is
-- counted): exact for an insert, a cancellation and any update of the columns it reads.
create function pledge_hour_sums_pledges() returns trigger language plpgsql as $$
begin
    if tg_op in ('UPDATE', 'DELETE') and old.status <> 'cancelled' then
        update pledge_hour_sums
           set pledges = pledges - 1, amount = amount - old.amount
         where project_id = old.project_id
           and hour = date_trunc('hour', old.created_at, 'UTC')
           and currency = old.currency;
    end if;
    if tg_op in ('INSERT', 'UPDATE') and new.status <> 'cancelled' then
        insert into pledge_hour_sums as s (project_id, hour, currency, pledges, amount)
        values (new.project_id, date_trunc('hour', new.created_at, 'UTC'), new.currency, 1, new.amount)
        on conflict (project_id, hour, currency)
        do update set pledges = s.pledges + 1, amount = s.amount + excluded.amount;
    end if;
    return null;
end $$;
create trigger pledges_hour_sums
    after insert or delete or update of amount, status, project_id, created_at, currency on pledges
    for each row execute function pledge_hour_sums_pledges();

-- The health strip counts the messages sent in a week: a range over `sent_at`.
create index outbox_sent_at_idx on outbox (sent_at) where sent_at is not null;
