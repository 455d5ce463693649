-- Outreach (issue 11 point 6) counts "attended an information session": the meetings'
-- attendance (20261130194000_meetings.sql) on an outreach topic. The outreach migration left
-- this view empty for the meetings to fill; same three columns, one row per household, topic
-- and meeting it came to (`outreach_informed` counts distinct households).
create or replace view outreach_session_attendance as
    select m.household_id, m.topic, m.meeting_at as attended_at
      from meeting_attended_topics m
     where m.topic in ('legal_stay', 'trafficking', 'hiv', 'remittances');
