DROP INDEX IF EXISTS consolidation_jobs_plan_of_idx;
ALTER TABLE consolidation_jobs DROP COLUMN IF EXISTS plan_of;
DROP TABLE IF EXISTS consolidation_plans;
