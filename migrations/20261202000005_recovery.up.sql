-- Continuous recovery (DESIGN.md §4): maintenance re-publishes stranded commands under a fresh
-- message id and spaces its re-publications by when it last published; a sweep is keyed by its
-- tick instant, so a schedule may tick any number of times a day.

ALTER TABLE consolidation_jobs
    ADD COLUMN published_at timestamptz,
    ADD COLUMN sweep_tick timestamptz;
ALTER TABLE consolidation_rollbacks ADD COLUMN published_at timestamptz;

ALTER TABLE consolidation_sweeps ADD COLUMN tick timestamptz;
UPDATE consolidation_sweeps SET tick = scheduled_at;
ALTER TABLE consolidation_sweeps ALTER COLUMN tick SET NOT NULL;
ALTER TABLE consolidation_sweeps DROP CONSTRAINT consolidation_sweeps_pkey;
ALTER TABLE consolidation_sweeps ADD CONSTRAINT consolidation_sweeps_pkey PRIMARY KEY (tick);
DROP INDEX consolidation_sweeps_running_idx;
CREATE INDEX consolidation_sweeps_running_idx ON consolidation_sweeps (tick) WHERE status = 'running';

UPDATE consolidation_jobs j SET sweep_tick = s.tick
  FROM consolidation_sweeps s WHERE j.scheduled_for = s.sweep_date;
ALTER TABLE consolidation_jobs ADD CONSTRAINT consolidation_jobs_sweep_tick_check
    CHECK (sweep_tick IS NULL OR trigger_type = 'scheduled');
DROP INDEX consolidation_jobs_scheduled_for_idx;
CREATE INDEX consolidation_jobs_sweep_tick_idx ON consolidation_jobs (sweep_tick) WHERE sweep_tick IS NOT NULL;
