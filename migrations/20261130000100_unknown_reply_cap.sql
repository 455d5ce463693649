-- Replies to numbers that are neither a household's nor a coordinator's, counted per number
-- in windows of an hour (against SMS pumping: texts "from" invented or premium numbers that
-- make the service pay for replies). One row per number; its window restarts on the first
-- reply an hour or more after the window began. Updated by one upsert per reply, so
-- concurrent texts from one number are counted exactly.
create table sms_unknown_replies (
    phone        text primary key,
    window_start timestamptz not null,
    replies      integer not null check (replies >= 0)
);
