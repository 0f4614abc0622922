-- /metrics counts jobs by status and buckets completed jobs' durations on every scrape:
-- an index-only scan instead of reading the whole table.
CREATE INDEX consolidation_jobs_status_durations_idx ON consolidation_jobs (status) INCLUDE (started_at, completed_at);
-- The sweep reads back the jobs its tick created.
CREATE INDEX consolidation_jobs_scheduled_for_idx ON consolidation_jobs (scheduled_for) WHERE scheduled_for IS NOT NULL;
