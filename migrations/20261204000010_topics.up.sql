-- Syntheses span topics: one whose topic changed and that no new synthesis replaced is archived
-- as `outdated`.
ALTER TABLE task_memories DROP CONSTRAINT task_memories_archive_reason_check;
ALTER TABLE task_memories ADD CONSTRAINT task_memories_archive_reason_check
    CHECK (archive_reason IN ('staleness', 'low_value', 'manual', 'superseded', 'rolled_back', 'unmerged',
                              'outdated'));
