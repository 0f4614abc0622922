-- Recovery that counts what it should (DESIGN.md §4): failures that are not outages are counted
-- on the row, so outage deliveries never use them up; maintenance records the stream sequence of
-- each command it publishes again, so it re-publishes (or fails a job) only once that message is
-- gone; a sweep's fan-out records its progress, so a long fan-out is not taken for a dead one.

ALTER TABLE consolidation_jobs
    ADD COLUMN failures integer NOT NULL DEFAULT 0,
    ADD COLUMN published_seq bigint;
ALTER TABLE consolidation_rollbacks
    ADD COLUMN failures integer NOT NULL DEFAULT 0,
    ADD COLUMN published_seq bigint;
ALTER TABLE consolidation_sweeps ADD COLUMN progress_at timestamptz;
