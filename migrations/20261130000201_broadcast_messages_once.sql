-- One outbox message per (broadcast, recipient number), held by the database.
--
-- Two "send" calls at once (a double click, or the API and the scheduler) used to queue
-- every message twice: both saw a draft and both queued; the second's recipient rows were
-- dropped as conflicts, so its outbox rows were not linked to any recipient (14 outbox rows
-- for 7 recipients). The transition is now one conditional update (src/broadcasts.rs), and
-- every broadcast message carries its broadcast, unique per number.

alter table outbox add column broadcast_id bigint references broadcasts (id);

-- The messages recipients point at belong to their broadcast. Each recipient row (primary
-- key broadcast, phone) points at one message of its own number, so these pairs are unique
-- and the index below cannot fail on an existing database.
update outbox o
   set broadcast_id = r.broadcast_id
  from broadcast_recipients r
 where r.outbox_id = o.id and o.phone = r.phone and o.kind = 'broadcast';

-- The extra copies the old race queued are the broadcast messages that no recipient points
-- at. They keep `broadcast_id` null (they are not counted in any broadcast's progress, as
-- before). Those not yet sent are cancelled here, with the reason, rather than sent a
-- second time: only while still `queued`, and only when a linked message with the same
-- number and text was queued within the same hour. Nothing is deleted; copies already sent
-- stay as they are (the history of what went out).
update outbox d
   set status = 'cancelled',
       last_error = 'a second copy of outbox ' || t.id || ' (broadcast queued twice); not sent',
       updated_at = now()
  from outbox t
 where d.kind = 'broadcast' and d.broadcast_id is null and d.status = 'queued'
   and t.kind = 'broadcast' and t.broadcast_id is not null
   and t.phone = d.phone and t.body = d.body
   and t.created_at between d.created_at - interval '1 hour' and d.created_at + interval '1 hour';

create unique index outbox_broadcast_phone_idx on outbox (broadcast_id, phone)
    where broadcast_id is not null;
