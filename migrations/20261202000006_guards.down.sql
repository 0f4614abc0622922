DROP TABLE consolidation_reviews;

ALTER TABLE consolidation_jobs DROP COLUMN cancel_requested_by, DROP COLUMN cancel_requested_at;
-- A cancelled job reads as failed once `cancelled` is gone.
UPDATE consolidation_jobs SET status = 'failed', error_message = COALESCE(error_message, 'cancelled')
 WHERE status = 'cancelled';
UPDATE consolidation_jobs SET phase = 'failed' WHERE phase = 'cancelled';
ALTER TABLE consolidation_jobs DROP CONSTRAINT consolidation_jobs_phase_check;
ALTER TABLE consolidation_jobs ADD CONSTRAINT consolidation_jobs_phase_check
    CHECK (phase IN ('queued', 'loading', 'planning', 'applying', 'done', 'failed'));
ALTER TABLE consolidation_jobs DROP CONSTRAINT consolidation_jobs_status_check;
ALTER TABLE consolidation_jobs ADD CONSTRAINT consolidation_jobs_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'failed'));

DELETE FROM consolidation_changes WHERE operation = 'review';
ALTER TABLE consolidation_changes DROP CONSTRAINT consolidation_changes_operation_check;
ALTER TABLE consolidation_changes ADD CONSTRAINT consolidation_changes_operation_check
    CHECK (operation IN ('merge', 'archive', 'promote', 'summarize', 'rollback', 'unarchive', 'reuse'));

-- A superseded memory stays hidden, as a manual archive (not a change of the memory: no new version).
ALTER TABLE task_memories DISABLE TRIGGER task_memories_version;
UPDATE task_memories SET archive_reason = 'manual' WHERE archive_reason = 'superseded';
ALTER TABLE task_memories ENABLE TRIGGER task_memories_version;
ALTER TABLE task_memories DROP CONSTRAINT task_memories_archive_reason_check;
ALTER TABLE task_memories ADD CONSTRAINT task_memories_archive_reason_check
    CHECK (archive_reason IN ('staleness', 'low_value', 'manual'));
