DROP INDEX consolidation_jobs_sweep_tick_idx;
CREATE INDEX consolidation_jobs_scheduled_for_idx ON consolidation_jobs (scheduled_for) WHERE scheduled_for IS NOT NULL;
ALTER TABLE consolidation_jobs DROP CONSTRAINT consolidation_jobs_sweep_tick_check;
-- Keyed by date again: of several ticks on one day only the latest is kept.
DELETE FROM consolidation_sweeps s
 USING consolidation_sweeps later
 WHERE later.sweep_date = s.sweep_date AND later.tick > s.tick;
DROP INDEX consolidation_sweeps_running_idx;
ALTER TABLE consolidation_sweeps DROP CONSTRAINT consolidation_sweeps_pkey;
ALTER TABLE consolidation_sweeps ADD CONSTRAINT consolidation_sweeps_pkey PRIMARY KEY (sweep_date);
CREATE INDEX consolidation_sweeps_running_idx ON consolidation_sweeps (sweep_date) WHERE status = 'running';
ALTER TABLE consolidation_sweeps DROP COLUMN tick;
ALTER TABLE consolidation_rollbacks DROP COLUMN published_at;
ALTER TABLE consolidation_jobs DROP COLUMN sweep_tick, DROP COLUMN published_at;
