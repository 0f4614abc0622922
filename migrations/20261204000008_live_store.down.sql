DROP TABLE consolidation_kept_apart;
ALTER TABLE consolidation_jobs DROP COLUMN audit_purged_at;
ALTER TABLE consolidation_rollbacks DROP COLUMN later_jobs, DROP COLUMN cascade;

DELETE FROM consolidation_changes WHERE operation = 'unmerge';
ALTER TABLE consolidation_changes DROP CONSTRAINT consolidation_changes_operation_check;
ALTER TABLE consolidation_changes ADD CONSTRAINT consolidation_changes_operation_check
    CHECK (operation IN ('merge', 'archive', 'promote', 'summarize', 'rollback', 'unarchive', 'reuse', 'review'));

-- Retired memories were deleted before this migration.
DELETE FROM task_memories WHERE archive_reason IN ('rolled_back', 'unmerged');
ALTER TABLE task_memories DROP CONSTRAINT task_memories_archive_reason_check;
ALTER TABLE task_memories ADD CONSTRAINT task_memories_archive_reason_check
    CHECK (archive_reason IN ('staleness', 'low_value', 'manual', 'superseded'));

DROP TRIGGER task_memories_version ON task_memories;
CREATE TRIGGER task_memories_version BEFORE UPDATE ON task_memories
    FOR EACH ROW EXECUTE FUNCTION task_memories_bump_version();
