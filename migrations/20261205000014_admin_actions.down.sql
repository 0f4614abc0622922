DROP TABLE IF EXISTS workers;
ALTER TABLE consolidation_jobs DROP COLUMN IF EXISTS counts_before, DROP COLUMN IF EXISTS counts_after;
DROP TABLE IF EXISTS admin_actions;
