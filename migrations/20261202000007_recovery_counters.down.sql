ALTER TABLE consolidation_sweeps DROP COLUMN progress_at;
ALTER TABLE consolidation_rollbacks DROP COLUMN published_seq, DROP COLUMN failures;
ALTER TABLE consolidation_jobs DROP COLUMN published_seq, DROP COLUMN failures;
