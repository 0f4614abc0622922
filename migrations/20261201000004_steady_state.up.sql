-- Steady state (DESIGN.md §11): a consolidated memory keeps the type its sources share and every
-- source's task id; a job records when it read its snapshot, so the next one can compare only
-- what is new since.

ALTER TABLE task_memories
    ADD COLUMN source_type text CONSTRAINT task_memories_source_type_check CHECK (source_type IN (
        'error_fix', 'discovery', 'decision', 'learning', 'warning', 'codebase_knowledge')),
    ADD COLUMN task_ids text[] NOT NULL DEFAULT '{}';

-- Filling the new columns is not a change of the memory: the version trigger stays out of it, so
-- rollbacks of earlier jobs still find the versions they left.
ALTER TABLE task_memories DISABLE TRIGGER task_memories_version;
UPDATE task_memories c
   SET source_type = s.memory_type, task_ids = s.task_ids
  FROM (SELECT c2.id,
               CASE WHEN count(DISTINCT o.memory_type) = 1 THEN min(o.memory_type) END AS memory_type,
               COALESCE(array_agg(DISTINCT o.task_id) FILTER (WHERE o.task_id IS NOT NULL), '{}') AS task_ids
          FROM task_memories c2
          JOIN task_memories o ON o.id = ANY (c2.consolidated_from)
         WHERE c2.memory_type = 'consolidated'
         GROUP BY c2.id) s
 WHERE c.id = s.id;
ALTER TABLE task_memories ENABLE TRIGGER task_memories_version;

ALTER TABLE consolidation_jobs ADD COLUMN snapshot_at timestamptz;

-- The incremental snapshot asks which active memories moved since the base job.
CREATE INDEX task_memories_active_updated_idx ON task_memories (project_id, updated_at)
    WHERE NOT is_archived AND NOT is_duplicate;
-- The base job of an incremental run: the project's latest completed job.
CREATE INDEX consolidation_jobs_completed_idx ON consolidation_jobs (project_id, completed_at DESC)
    WHERE status = 'completed';
