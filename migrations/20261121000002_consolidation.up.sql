-- Consolidation jobs, their audit trail, rollbacks and the daily sweeps.

CREATE TABLE consolidation_jobs (
    id                 uuid PRIMARY KEY,
    project_id         uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    status             text NOT NULL DEFAULT 'pending' CONSTRAINT consolidation_jobs_status_check
                           CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    trigger_type       text NOT NULL CONSTRAINT consolidation_jobs_trigger_type_check
                           CHECK (trigger_type IN ('scheduled', 'manual', 'threshold')),
    options            jsonb NOT NULL DEFAULT '{}'::jsonb,
    memories_merged    integer NOT NULL DEFAULT 0,
    memories_archived  integer NOT NULL DEFAULT 0,
    memories_promoted  integer NOT NULL DEFAULT 0,
    summaries_created  integer NOT NULL DEFAULT 0,
    progress           real NOT NULL DEFAULT 0 CONSTRAINT consolidation_jobs_progress_check CHECK (progress BETWEEN 0 AND 1),
    phase              text NOT NULL DEFAULT 'queued' CONSTRAINT consolidation_jobs_phase_check
                           CHECK (phase IN ('queued', 'loading', 'planning', 'applying', 'done', 'failed')),
    memories_before    integer,
    memories_after     integer,
    attempts           integer NOT NULL DEFAULT 0,
    worker_id          text,
    heartbeat_at       timestamptz,
    scheduled_for      date,
    rolled_back_at     timestamptz,
    result             jsonb,
    started_at         timestamptz,
    completed_at       timestamptz,
    error_message      text,
    triggered_by       text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT consolidation_jobs_scheduled_for_check CHECK (scheduled_for IS NULL OR trigger_type = 'scheduled')
);
-- One job per project at a time, enforced here rather than trusted to the callers.
CREATE UNIQUE INDEX consolidation_jobs_one_active_per_project ON consolidation_jobs (project_id)
    WHERE status IN ('pending', 'running');
CREATE INDEX consolidation_jobs_history_idx ON consolidation_jobs (project_id, created_at DESC, id DESC);
CREATE INDEX consolidation_jobs_status_idx ON consolidation_jobs (status, heartbeat_at)
    WHERE status IN ('pending', 'running');

CREATE TABLE consolidation_changes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id         uuid REFERENCES consolidation_jobs (id) ON DELETE CASCADE,
    project_id     uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    operation      text NOT NULL CONSTRAINT consolidation_changes_operation_check
                       CHECK (operation IN ('merge', 'archive', 'promote', 'summarize', 'rollback', 'unarchive', 'reuse')),
    -- No foreign key: the audit trail outlives the memories it describes.
    memory_id      uuid NOT NULL,
    previous_state jsonb,
    new_state      jsonb,
    reason         text,
    confidence     real,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    changed_by     text NOT NULL
);
CREATE INDEX consolidation_changes_job_idx ON consolidation_changes (job_id, operation, id);
CREATE INDEX consolidation_changes_memory_idx ON consolidation_changes (memory_id, changed_at);
CREATE INDEX consolidation_changes_changed_at_idx ON consolidation_changes (changed_at);

CREATE TABLE consolidation_rollbacks (
    id                uuid PRIMARY KEY,
    job_id            uuid NOT NULL REFERENCES consolidation_jobs (id) ON DELETE CASCADE,
    project_id        uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    status            text NOT NULL DEFAULT 'pending' CONSTRAINT consolidation_rollbacks_status_check
                          CHECK (status IN ('pending', 'running', 'completed', 'failed', 'refused')),
    reason            text,
    requested_by      text NOT NULL,
    memories_restored integer NOT NULL DEFAULT 0,
    memories_deleted  integer NOT NULL DEFAULT 0,
    warnings          jsonb NOT NULL DEFAULT '[]'::jsonb,
    conflicts         jsonb NOT NULL DEFAULT '[]'::jsonb,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    completed_at      timestamptz
);
CREATE INDEX consolidation_rollbacks_job_idx ON consolidation_rollbacks (job_id, created_at);

CREATE TABLE consolidation_sweeps (
    sweep_date          date PRIMARY KEY,
    scheduled_at        timestamptz NOT NULL,
    status              text NOT NULL DEFAULT 'running' CONSTRAINT consolidation_sweeps_status_check
                            CHECK (status IN ('running', 'completed')),
    projects_considered integer NOT NULL DEFAULT 0,
    projects_triggered  integer NOT NULL DEFAULT 0,
    job_ids             uuid[] NOT NULL DEFAULT '{}',
    summary             jsonb,
    fanned_out_at       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz
);
CREATE INDEX consolidation_sweeps_running_idx ON consolidation_sweeps (sweep_date) WHERE status = 'running';
