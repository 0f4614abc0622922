ALTER TABLE consolidation_jobs DROP COLUMN snapshot;

CREATE OR REPLACE FUNCTION task_memories_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

ALTER TABLE task_memories DROP COLUMN written_xid;
