-- Delivery reports that arrive before their message's provider id is recorded.
--
-- Africa's Talking and Twilio name a message in a delivery report by their own id, which
-- the dispatcher records for a whole round of sends at once. A fast report (Twilio's
-- "sent" comes within a second) can arrive before that. It used to be stored and never
-- applied; now it waits here and `apply_early_delivery_reports` (called by the dispatcher
-- after each round and when idle) applies it once the id is known.

-- The one place a delivery report changes a message: the status only moves forward
-- (queued/sending → sent → delivered | failed; a final status never changes), the
-- provider's status and reason are kept. Returns the message's id, or null if no message
-- of that provider has the id.
create function apply_delivery(p_provider text, p_id bigint, p_pid text, p_state text,
                               p_provider_status text, p_reason text, p_at timestamptz)
returns bigint language plpgsql as $$
declare
    v_id bigint;
    v_rank int := case p_state when 'sent' then 1 else 2 end;
begin
    update outbox
       set status = case
               when status in ('delivered', 'failed', 'suppressed') then status
               when v_rank = 2 or status in ('queued', 'sending', 'sent') then p_state
               else status end,
           provider_status = case when status in ('delivered', 'failed', 'suppressed') then provider_status else p_provider_status end,
           last_error = case when p_state = 'failed' and status not in ('delivered', 'failed', 'suppressed')
                             then coalesce(p_reason, last_error) else last_error end,
           delivered_at = case when p_state = 'delivered' and status not in ('delivered', 'failed', 'suppressed') then p_at else delivered_at end,
           failed_at = case when p_state = 'failed' and status not in ('delivered', 'failed', 'suppressed') then p_at else failed_at end,
           sent_at = coalesce(sent_at, p_at),
           lease_until = case when status = 'sending' then lease_until else null end,
           updated_at = greatest(updated_at, p_at)
     where provider = p_provider and (id = p_id or provider_msg_id = p_pid)
    returning id into v_id;
    return v_id;
end $$;

create table early_delivery_reports (
    id              bigint generated always as identity primary key,
    inbound_id      bigint not null references inbound_messages (id),
    provider        text not null,
    provider_msg_id text not null,
    state           text not null check (state in ('sent', 'delivered', 'failed')),
    provider_status text not null,
    reason          text,
    received_at     timestamptz not null,
    outbox_id       bigint references outbox (id),
    applied_at      timestamptz,
    check ((outbox_id is null) = (applied_at is null))
);
create index early_delivery_reports_waiting_idx on early_delivery_reports (received_at)
    where applied_at is null;
create trigger early_delivery_reports_no_delete before delete on early_delivery_reports
    for each row execute function forbid_delete();

-- Applies, in the order they arrived, the waiting reports (of the last two days: a report
-- for a message that is not ours stays waiting and is not looked at again after that)
-- whose message now has its provider id. Returns how many were applied.
create function apply_early_delivery_reports(p_now timestamptz) returns integer
language plpgsql as $$
declare
    r record;
    v_done integer := 0;
begin
    for r in
        select e.id, e.provider, e.provider_msg_id, e.state, e.provider_status, e.reason,
               e.received_at, o.id as outbox_id
          from early_delivery_reports e
          join outbox o on o.provider = e.provider and o.provider_msg_id = e.provider_msg_id
         where e.applied_at is null and e.received_at > p_now - interval '2 days'
         order by e.received_at, e.id
           for update of e skip locked
    loop
        perform apply_delivery(r.provider, null, r.provider_msg_id, r.state, r.provider_status,
                               r.reason, r.received_at);
        update early_delivery_reports set outbox_id = r.outbox_id, applied_at = p_now
         where id = r.id;
        v_done := v_done + 1;
    end loop;
    return v_done;
end $$;
