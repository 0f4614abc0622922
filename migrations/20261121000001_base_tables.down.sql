DROP TABLE IF EXISTS playbook_changes;
DROP TABLE IF EXISTS playbook_entries;
DROP TABLE IF EXISTS memory_files;
DROP TABLE IF EXISTS task_memories;
DROP FUNCTION IF EXISTS task_memories_bump_version();
DROP TABLE IF EXISTS projects;
