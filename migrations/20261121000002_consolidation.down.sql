DROP TABLE IF EXISTS consolidation_sweeps;
DROP TABLE IF EXISTS consolidation_rollbacks;
DROP TABLE IF EXISTS consolidation_changes;
DROP TABLE IF EXISTS consolidation_jobs;
