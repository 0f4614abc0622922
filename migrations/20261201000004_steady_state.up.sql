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
-- A consolidated memory of consolidated memories (possible before this migration) is resolved
-- down to the plain memories at the bottom of its provenance.
WITH RECURSIVE leaves (root, id, memory_type, task_id) AS (
    SELECT c.id, o.id, o.memory_type, o.task_id
      FROM task_memories c JOIN task_memories o ON o.id = ANY (c.consolidated_from)
     WHERE c.memory_type = 'consolidated'
    UNION
    SELECT l.root, o.id, o.memory_type, o.task_id
      FROM leaves l JOIN task_memories m ON m.id = l.id AND l.memory_type = 'consolidated'
      JOIN task_memories o ON o.id = ANY (m.consolidated_from)
)
UPDATE task_memories c
   SET source_type = s.memory_type, task_ids = s.task_ids
  FROM (SELECT root,
               CASE WHEN count(DISTINCT memory_type) = 1 THEN min(memory_type) END AS memory_type,
               COALESCE(array_agg(DISTINCT task_id) FILTER (WHERE task_id IS NOT NULL), '{}') AS task_ids
          FROM leaves WHERE memory_type NOT IN ('consolidated', 'synthesis')
         GROUP BY root) s
 WHERE c.id = s.root;
ALTER TABLE task_memories ENABLE TRIGGER task_memories_version;

ALTER TABLE consolidation_jobs ADD COLUMN snapshot_at timestamptz;

-- The base job of an incremental run: the project's latest completed job.
CREATE INDEX consolidation_jobs_completed_idx ON consolidation_jobs (project_id, completed_at DESC)
    WHERE status = 'completed';
