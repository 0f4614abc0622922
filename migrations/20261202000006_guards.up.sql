-- Guards (DESIGN.md §11): the value guard's review queue and `superseded` archives, audited
-- review decisions, and cancellable jobs.

ALTER TABLE task_memories DROP CONSTRAINT task_memories_archive_reason_check;
ALTER TABLE task_memories ADD CONSTRAINT task_memories_archive_reason_check
    CHECK (archive_reason IN ('staleness', 'low_value', 'manual', 'superseded'));

ALTER TABLE consolidation_changes DROP CONSTRAINT consolidation_changes_operation_check;
ALTER TABLE consolidation_changes ADD CONSTRAINT consolidation_changes_operation_check
    CHECK (operation IN ('merge', 'archive', 'promote', 'summarize', 'rollback', 'unarchive', 'reuse', 'review'));

ALTER TABLE consolidation_jobs DROP CONSTRAINT consolidation_jobs_status_check;
ALTER TABLE consolidation_jobs ADD CONSTRAINT consolidation_jobs_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled'));
ALTER TABLE consolidation_jobs DROP CONSTRAINT consolidation_jobs_phase_check;
ALTER TABLE consolidation_jobs ADD CONSTRAINT consolidation_jobs_phase_check
    CHECK (phase IN ('queued', 'loading', 'planning', 'applying', 'done', 'failed', 'cancelled'));
-- A cancel request waits here for the job's next phase boundary.
ALTER TABLE consolidation_jobs
    ADD COLUMN cancel_requested_at timestamptz,
    ADD COLUMN cancel_requested_by text;

CREATE TABLE consolidation_reviews (
    id              uuid PRIMARY KEY,
    project_id      uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    job_id          uuid REFERENCES consolidation_jobs (id) ON DELETE SET NULL,
    kind            text NOT NULL CONSTRAINT consolidation_reviews_kind_check CHECK (kind IN ('possible_update')),
    -- No foreign keys to memories: like the audit trail, a review outlives what it describes.
    older_memory_id uuid NOT NULL,
    newer_memory_id uuid NOT NULL,
    older_version   bigint NOT NULL,
    newer_version   bigint NOT NULL,
    similarity      real NOT NULL,
    difference      jsonb NOT NULL,
    suggestion      text NOT NULL CONSTRAINT consolidation_reviews_suggestion_check CHECK (suggestion IN ('supersede')),
    status          text NOT NULL DEFAULT 'open' CONSTRAINT consolidation_reviews_status_check
                        CHECK (status IN ('open', 'approved', 'rejected')),
    decided_by      text,
    decided_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT consolidation_reviews_distinct_check CHECK (older_memory_id <> newer_memory_id),
    CONSTRAINT consolidation_reviews_decision_check CHECK ((status = 'open') = (decided_at IS NULL))
);
-- One review per pair of memories, ever: a judged pair is not proposed again.
CREATE UNIQUE INDEX consolidation_reviews_pair_idx ON consolidation_reviews
    (project_id, LEAST(older_memory_id, newer_memory_id), GREATEST(older_memory_id, newer_memory_id));
CREATE INDEX consolidation_reviews_queue_idx ON consolidation_reviews (project_id, status, created_at, id);
