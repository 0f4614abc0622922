-- Every action an administrator took (the console's audit page, DESIGN.md §12): written in the
-- same transaction as the action where the action is a database write. No foreign keys: the
-- record outlives the job, review or memory it names.
CREATE TABLE admin_actions (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    action     text NOT NULL CHECK (action IN ('rollback_requested', 'unmerge', 'review_approved',
                                               'review_rejected', 'configuration_changed', 'job_cancelled',
                                               'job_triggered', 'plan_applied', 'memory_archived',
                                               'memory_unarchived', 'memory_pinned', 'memory_unpinned')),
    project_id uuid,
    target_id  uuid,
    details    jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX admin_actions_project ON admin_actions (project_id, id);

-- A project's memories by state when its job started and when it ended (`project_memory_counts`
-- read in the claiming and the completing statement): the series of `GET /projects/{id}/timeline`.
ALTER TABLE consolidation_jobs ADD COLUMN counts_before jsonb, ADD COLUMN counts_after jsonb;

-- The worker processes alive: each writes its row at start and beats it while it runs.
CREATE TABLE workers (
    worker_id      text PRIMARY KEY,
    started_at     timestamptz NOT NULL DEFAULT now(),
    last_heartbeat timestamptz NOT NULL DEFAULT now()
);
