DROP TRIGGER IF EXISTS task_memories_touched ON task_memories;
DROP FUNCTION IF EXISTS task_memories_touch();
ALTER TABLE task_memories DROP COLUMN IF EXISTS touched_xid;
DROP TRIGGER IF EXISTS task_memories_embedding_version ON task_memories;
DROP FUNCTION IF EXISTS task_memories_bump_embedding_version();
ALTER TABLE task_memories DROP COLUMN IF EXISTS embedding_version;
