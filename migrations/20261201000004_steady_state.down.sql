DROP INDEX consolidation_jobs_completed_idx;
ALTER TABLE consolidation_jobs DROP COLUMN snapshot_at;
ALTER TABLE task_memories DROP COLUMN task_ids, DROP COLUMN source_type;
