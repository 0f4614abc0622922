UPDATE task_memories SET archive_reason = 'superseded' WHERE archive_reason = 'outdated';
ALTER TABLE task_memories DROP CONSTRAINT task_memories_archive_reason_check;
ALTER TABLE task_memories ADD CONSTRAINT task_memories_archive_reason_check
    CHECK (archive_reason IN ('staleness', 'low_value', 'manual', 'superseded', 'rolled_back', 'unmerged'));
