-- A household's page (console, issue 10): its messages in and out, newest first, its
-- receipts and its callback requests, each read by index (console design §7).
create index if not exists outbox_phone_created_idx on outbox (phone, created_at desc);
create index if not exists inbound_messages_sender_received_idx
    on inbound_messages (sender_e164, received_at desc) where sender_e164 is not null;
create index if not exists receipts_pledge_idx on receipts (pledge_id) where pledge_id is not null;
create index if not exists receipts_household_idx on receipts (household_id) where household_id is not null;
create index if not exists callback_requests_household_idx
    on callback_requests (household_id, created_at desc) where household_id is not null;
