DELETE FROM consolidation_changes WHERE operation = 'pin';
ALTER TABLE consolidation_changes DROP CONSTRAINT consolidation_changes_operation_check;
ALTER TABLE consolidation_changes ADD CONSTRAINT consolidation_changes_operation_check
    CHECK (operation IN ('merge', 'archive', 'promote', 'summarize', 'rollback', 'unarchive', 'reuse', 'review',
                         'unmerge'));

DROP TRIGGER task_memories_version ON task_memories;
CREATE TRIGGER task_memories_version
    BEFORE UPDATE OF task_id, execution_summary, memory_type, goal, result, feedback, tags, context_embedding,
                     success, learned_at, is_duplicate, duplicate_of, consolidated_from, consolidated_at,
                     synthesized_from, synthesized_at, synthesis_confidence, needs_review, is_archived,
                     archived_at, archive_reason, source_type, task_ids
    ON task_memories FOR EACH ROW EXECUTE FUNCTION task_memories_bump_version();

ALTER TABLE task_memories DROP COLUMN pinned;
