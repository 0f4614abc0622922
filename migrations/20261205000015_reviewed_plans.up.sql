-- A dry run's whole plan, kept so that an operator can apply exactly what they reviewed
-- (POST /consolidation/jobs/{dry_run_id}/apply). JSON as bytes: only the worker reads it back.
CREATE TABLE consolidation_plans (
    job_id     uuid PRIMARY KEY REFERENCES consolidation_jobs (id) ON DELETE CASCADE,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    plan       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consolidation_plans_age_idx ON consolidation_plans (project_id, created_at);

-- The dry run whose stored plan a job applies instead of planning.
ALTER TABLE consolidation_jobs ADD COLUMN plan_of uuid REFERENCES consolidation_jobs (id) ON DELETE SET NULL;
CREATE INDEX consolidation_jobs_plan_of_idx ON consolidation_jobs (plan_of) WHERE plan_of IS NOT NULL;
