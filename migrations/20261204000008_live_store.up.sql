-- The live store (DESIGN.md §6, §11): a reuse is not an edit, undo works in any order and at the
-- grain of one cluster, and what a rollback or an unmerge takes away is retired, not deleted.

-- The version (what apply, rollback and reviews check) moves only when a column other than the
-- usage counters (reused_count, last_reused_at) is set.
DROP TRIGGER task_memories_version ON task_memories;
CREATE TRIGGER task_memories_version
    BEFORE UPDATE OF task_id, execution_summary, memory_type, goal, result, feedback, tags, context_embedding,
                     success, learned_at, is_duplicate, duplicate_of, consolidated_from, consolidated_at,
                     synthesized_from, synthesized_at, synthesis_confidence, needs_review, is_archived,
                     archived_at, archive_reason, source_type, task_ids
    ON task_memories FOR EACH ROW EXECUTE FUNCTION task_memories_bump_version();

-- Retired: hidden like archived, kept and readable, never restored by hand.
ALTER TABLE task_memories DROP CONSTRAINT task_memories_archive_reason_check;
ALTER TABLE task_memories ADD CONSTRAINT task_memories_archive_reason_check
    CHECK (archive_reason IN ('staleness', 'low_value', 'manual', 'superseded', 'rolled_back', 'unmerged'));

ALTER TABLE consolidation_changes DROP CONSTRAINT consolidation_changes_operation_check;
ALTER TABLE consolidation_changes ADD CONSTRAINT consolidation_changes_operation_check
    CHECK (operation IN ('merge', 'archive', 'promote', 'summarize', 'rollback', 'unarchive', 'reuse', 'review',
                         'unmerge'));

-- A rollback may take the standing later jobs with it (`cascade`); `later_jobs` names them, or
-- the jobs that made it refuse.
ALTER TABLE consolidation_rollbacks
    ADD COLUMN cascade boolean NOT NULL DEFAULT false,
    ADD COLUMN later_jobs jsonb NOT NULL DEFAULT '[]'::jsonb;

-- Set when the purge removed a job's audit rows: its rollback is gone (410), not refused.
ALTER TABLE consolidation_jobs ADD COLUMN audit_purged_at timestamptz;

-- Pairs of memories a person took apart (unmerge): not merged again while both texts stay as
-- they were (the digests are md5 of execution_summary at the time).
CREATE TABLE consolidation_kept_apart (
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    low_id       uuid NOT NULL,
    high_id      uuid NOT NULL,
    low_digest   text NOT NULL,
    high_digest  text NOT NULL,
    unmerged_id  uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, low_id, high_id),
    CONSTRAINT consolidation_kept_apart_order_check CHECK (low_id < high_id)
);
