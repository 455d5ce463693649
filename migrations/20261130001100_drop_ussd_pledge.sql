-- Every USSD effect, the pledge included, now runs through one path in the application
-- (claim the step, run the action, record the result, commit inside the hop's deadline):
-- the pledge-only server-side function is no longer called by anything.
drop function ussd_pledge(text, text, jsonb, timestamptz, integer, bigint, numeric, text, bytea, boolean);
