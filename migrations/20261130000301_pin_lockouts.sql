-- Growing PIN locks: the number of locks in a row (15 minutes, then an hour, then a day
-- each time); a right PIN sets it back to 0. See `verify_pin` in src/actions.rs.
alter table coordinators
    add column pin_lockouts integer not null default 0 check (pin_lockouts >= 0);
