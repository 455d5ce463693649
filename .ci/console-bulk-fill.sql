-- Not part of CI: the bulk fill used for docs/PERFORMANCE.md §7 when the generator was too slow on a
-- loaded machine (its pledges step took 5 minutes a batch of 50,000). After
-- `hashar demo-data --households 100000`, in psql:
--   create table perf_hh as select row_number() over (order by h.id) as i, h.id, h.community_id, p.phone
--     from households h join phones p on p.household_id = h.id
--    where p.phone like '+99290%' and h.registered_via = 'demo' and h.name like 'Household %';
--   create unique index on perf_hh (i); analyze perf_hh;
-- then this file with -v from=0 -v to=10000 (those go through every trigger), then
--   alter table pledges disable trigger pledges_sums, disable trigger pledges_hour_sums, disable trigger pledges_code;
-- then this file once a batch (-v from=10000 -v to=210000, and so on up to 1000000), then the second
-- part below (`\i` it, or paste it): it adds the filled pledges to the sums the triggers keep, enables
-- the triggers again and checks every sum against a direct sum. The now of the timestamps is fixed
-- (2026-11-30 19:45 UTC): change it for another day.
insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key, created_at, code)
select o.ids[1 + (g / 7) % array_length(o.ids, 1)], hh.id, hh.phone,
       (10 + (g * 2654435761) % 4991)::numeric(14, 2),
       o.cur[1 + (g / 7) % array_length(o.ids, 1)],
       case when g % 4 = 0 then 'sms' else 'ussd' end,
       'scale:' || g,
       timestamptz '2026-11-30 19:45:00Z' - ((g * 40503) % (84 * 24 * 60)) * interval '1 minute',
       lpad(g::text, 7, '0')
  from generate_series(:from::bigint, :to::bigint - 1) g
  join perf_hh hh on hh.i = 1 + (g * 7919) % (select count(*) from perf_hh)
  join (select community_id, array_agg(id order by id) as ids, array_agg(currency order by id) as cur
          from projects where status = 'open' group by community_id) o on o.community_id = hh.community_id;

-- Second part (after the last batch):
-- -- After the trigger-less fill: add the pledges 10000.. to the sums the triggers keep, then
-- -- put the triggers back. One transaction.
-- begin;
-- create temp table filled as
--   select project_id, pledge_stripe(id) stripe, currency, amount, created_at from pledges
--    where idempotency_key like 'scale:%' and substr(idempotency_key, 7)::bigint >= 10000;
-- update project_pledge_sums s set pledged = s.pledged + f.a, outstanding = s.outstanding + f.a
--   from (select project_id, stripe, sum(amount) a from filled group by 1, 2) f
--  where f.project_id = s.project_id and f.stripe = s.stripe;
-- insert into pledge_hour_sums as s (project_id, hour, currency, stripe, pledges, amount)
-- select project_id, date_trunc('hour', created_at, 'UTC'), currency, stripe, count(*), sum(amount) from filled group by 1, 2, 3, 4
-- on conflict (project_id, hour, currency, stripe) do update set pledges = s.pledges + excluded.pledges, amount = s.amount + excluded.amount;
-- insert into pledge_week_sums as s (project_id, week, currency, stripe, pledges, amount)
-- select project_id, date_trunc('week', created_at, 'UTC'), currency, stripe, count(*), sum(amount) from filled group by 1, 2, 3, 4
-- on conflict (project_id, week, currency, stripe) do update set pledges = s.pledges + excluded.pledges, amount = s.amount + excluded.amount;
-- alter table pledges enable trigger pledges_sums;
-- alter table pledges enable trigger pledges_hour_sums;
-- alter table pledges enable trigger pledges_code;
-- commit;
-- -- the checks: every sum equals a direct sum
-- select 'project_pledge_sums off', count(*) from project_pledge_sums s where s.pledged <> (select coalesce(sum(amount), 0) from pledges where project_id = s.project_id and pledge_stripe(id) = s.stripe and status <> 'cancelled');
-- select 'hour rows off', count(*) from (select project_id, date_trunc('hour', created_at, 'UTC') h, currency, count(*) n, sum(amount) a from pledges where status <> 'cancelled' group by 1,2,3) d
--   full join (select project_id, hour, currency, sum(pledges) pledges, sum(amount) amount from pledge_hour_sums group by 1, 2, 3 having sum(pledges) > 0) s on s.project_id = d.project_id and s.hour = d.h and s.currency = d.currency
--  where s.pledges is distinct from d.n or s.amount is distinct from d.a;
-- select 'week rows off', count(*) from (select project_id, date_trunc('week', created_at, 'UTC') w, currency, count(*) n, sum(amount) a from pledges where status <> 'cancelled' group by 1,2,3) d
--   full join (select * from pledge_week_sums where pledges > 0) s on s.project_id = d.project_id and s.week = d.w and s.currency = d.currency
--  where s.pledges is distinct from d.n or s.amount is distinct from d.a;
-- vacuum analyze;
