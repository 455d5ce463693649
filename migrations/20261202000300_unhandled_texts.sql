-- A text whose pledge was made by the quick path's first statement but whose reply was
-- never queued (the process died before the second, issue 12) is stored with no
-- `handled_at`. A retry of the text handles it; so does the scheduler, which finds such
-- texts by this index (every other text is handled in the statement or transaction that
-- stores it, so the index stays nearly empty).
create index if not exists inbound_messages_unhandled_sms_idx on inbound_messages (received_at)
    where kind = 'sms' and handled_at is null;
