-- Not part of CI: EXPLAIN (ANALYZE, BUFFERS) of the console's heaviest statements, before (the
-- queries as they were at 151f931) and after, with generic plans as the server's pool runs them
-- (docs/PERFORMANCE.md §7). On a database made by `hashar demo-data --households N --pledges M`:
--   psql -h 127.0.0.1 -U postgres -d hashar_perf_bench -f .ci/console-explain.sql
-- The chart's bounds below are the Dushanbe weeks up to the week of 30 Nov 2026; change them for another date.
\set ON_ERROR_STOP 1
set plan_cache_mode = force_generic_plan;
select project_id as p from pledges group by 1 order by count(*) desc, 1 limit 1 \gset
\echo busiest project :p
-- PROJECT PAGE, before: store::pledges::list (the API's list with optional filters)
prepare old_list(bigint[], bigint, bigint, text, text, date, date, bigint, bigint) as
select pl.id, pl.project_id, p.community_id, pl.household_id, pl.phone, pl.amount, pl.currency, pl.said_amount, pl.said_currency, pl.rate, pl.channel, pl.status, pl.created_at
  from pledges pl join projects p on p.id = pl.project_id
 where ($1::bigint[] is null or p.community_id = any($1)) and ($2::bigint is null or p.community_id = $2)
   and ($3::bigint is null or pl.project_id = $3) and ($4::text is null or pl.status = $4)
   and ($5::text is null or pl.channel = $5) and ($6::date is null or pl.created_at >= $6::date)
   and ($7::date is null or pl.created_at < $7::date + 1)
 order by pl.created_at desc, pl.id desc limit $8 offset $9;
explain (analyze, buffers, costs off) execute old_list(null, null, :p, null, null, null, null, 20, 0);
-- PROJECT PAGE, after: store::pledges::of_project, first page and a deep page
prepare new_list(bigint, timestamptz, bigint, bigint) as
select pl.id, pl.project_id, p.community_id, pl.household_id, pl.phone, pl.amount, pl.currency, pl.said_amount, pl.said_currency, pl.rate, pl.channel, pl.status, pl.created_at
  from pledges pl join projects p on p.id = pl.project_id
 where pl.project_id = $1 and (pl.created_at, pl.id) < (coalesce($2::timestamptz, 'infinity'), $3::bigint)
 order by pl.created_at desc, pl.id desc limit $4;
explain (analyze, buffers, costs off) execute new_list(:p, null, 9223372036854775807, 21);
select created_at as at, id from pledges where project_id = :p order by created_at desc, id desc offset 30000 limit 1 \gset
explain (analyze, buffers, costs off) execute new_list(:p, :'at', :id, 21);
-- receipts of the project
prepare receipts_of(bigint, bigint) as select id, project_id, pledge_id, household_id, amount, currency, received_on, method, receipt_no, recorded_by, recorded_at, reverses, reason from receipts where project_id = $1 order by id desc limit $2;
explain (analyze, buffers, costs off) execute receipts_of(:p, 20);
-- OVERVIEW, before: the weeks from the hours
prepare old_weeks(bigint[], text, timestamptz, timestamptz) as
select date_trunc('week', s.hour at time zone $2)::date, s.currency, sum(s.pledges)::bigint, sum(s.amount)
  from pledge_hour_sums s join projects pr on pr.id = s.project_id
 where s.hour >= $3 and s.hour < $4 and s.pledges > 0 and ($1::bigint[] is null or pr.community_id = any($1))
 group by 1, 2 order by 1, 2;
explain (analyze, buffers, costs off) execute old_weeks(null, 'Asia/Dushanbe', '2026-09-06 19:00Z', '2026-11-29 19:00Z');
-- OVERVIEW, after: UTC weeks plus the hours around each bound
prepare new_weeks(bigint[], timestamptz[], timestamptz[]) as
with b as (select $2::timestamptz[] as local, $3::timestamptz[] as utc),
           parts as (
               select width_bucket(w.week, b.utc) as i, w.currency, w.pledges, w.amount
                 from pledge_week_sums w join projects pr on pr.id = w.project_id, b
                where w.week >= b.utc[1] and w.week < b.utc[cardinality(b.utc)]
                  and ($1::bigint[] is null or pr.community_id = any($1))
               union all
               select x.i, h.currency, x.sign * h.pledges, x.sign * h.amount
                 from b cross join unnest(b.local, b.utc) as k(local, utc)
                 join pledge_hour_sums h
                   on h.hour >= least(k.local, k.utc) and h.hour < greatest(k.local, k.utc)
                 join projects pr on pr.id = h.project_id
                 cross join lateral (values
                       (width_bucket(h.hour, b.local), 1),
                       (width_bucket(date_trunc('week', h.hour, 'UTC'), b.utc), -1)) as x(i, sign)
                where $1::bigint[] is null or pr.community_id = any($1))
           select i, currency, sum(pledges)::bigint, sum(amount)
             from parts, b
            where i between 1 and cardinality(b.local) - 1
            group by i, currency
           having sum(pledges) > 0
            order by i, currency;
select array_agg(timestamptz '2026-09-13 19:00Z' + k * interval '1 week' order by k) as l,
       array_agg(timestamptz '2026-09-14 00:00Z' + k * interval '1 week' order by k) as u
  from generate_series(0, 12) k \gset
explain (analyze, buffers, costs off) execute new_weeks(null, :'l', :'u');
execute new_weeks(null, :'l', :'u');
execute old_weeks(null, 'Asia/Dushanbe', '2026-09-13 19:00Z', '2026-12-06 19:00Z');
-- OVERVIEW: the projects and the health strip
prepare projects(bigint[]) as select c.id, c.name_tg, c.name_ru, c.name_en, t.project_id, t.name_tg, t.name_ru, t.name_en, t.status, t.currency, t.target, t.pledged, t.outstanding, t.received, t.matched, t.matched_total, t.percent
 from project_totals t join communities c on c.id = t.community_id where $1::bigint[] is null or t.community_id = any($1) order by c.code, t.code;
explain (analyze, buffers, costs off) execute projects(null);
prepare health(bigint[], timestamptz, timestamptz) as
with h as (select registered_via from households where $1::bigint[] is null or community_id = any($1)),
     m as (select o.status from outbox o where o.sent_at >= $2 and o.sent_at < $3
             and ($1::bigint[] is null or exists (select 1 from phones ph join households hh on hh.id = ph.household_id where ph.phone = o.phone and hh.community_id = any($1))))
select (select count(*) from h where registered_via = 'coordinator'), (select count(*) from h where registered_via = 'ussd'),
       (select count(*) from h where registered_via = 'sms'), (select count(*) from h where registered_via = 'demo'),
       (select count(*) from m), (select count(*) from m where status = 'delivered');
explain (analyze, buffers, costs off) execute health(null, '2026-11-29 19:00Z', '2026-11-30 20:00Z');
prepare health2(bigint[], timestamptz, timestamptz) as
with h as (select count(*) filter (where registered_via = 'coordinator') as by_coordinator, count(*) filter (where registered_via = 'ussd') as by_ussd,
                  count(*) filter (where registered_via = 'sms') as by_sms, count(*) filter (where registered_via = 'demo') as by_demo
             from households where $1::bigint[] is null or community_id = any($1)),
     m as (select count(*) as sent, count(*) filter (where o.status = 'delivered') as delivered from outbox o where o.sent_at >= $2 and o.sent_at < $3
             and ($1::bigint[] is null or exists (select 1 from phones ph join households hh on hh.id = ph.household_id where ph.phone = o.phone and hh.community_id = any($1))))
select h.by_coordinator, h.by_ussd, h.by_sms, h.by_demo, m.sent, m.delivered from h, m;
explain (analyze, buffers, costs off) execute health2(null, '2026-11-29 19:00Z', '2026-11-30 20:00Z');
