-- The console's Money page lists the receipts recorded today (newest first, 20 at most):
-- read backwards along this index from the start of today, never a scan of every receipt.
create index receipts_recorded_at_idx on receipts (recorded_at desc, id desc);
