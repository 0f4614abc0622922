-- Which transaction last wrote each memory. An incremental job counts as new every memory whose
-- last write its base job's snapshot could not see: `NOT pg_visible_in_snapshot(written_xid,
-- snapshot)`. Unlike the oldest transaction start read from pg_stat_activity, the snapshot needs
-- no view of other roles' sessions.
ALTER TABLE task_memories ADD COLUMN written_xid xid8 NOT NULL DEFAULT pg_current_xact_id();

CREATE OR REPLACE FUNCTION task_memories_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    NEW.written_xid := pg_current_xact_id();
    RETURN NEW;
END;
$$;

ALTER TABLE consolidation_jobs ADD COLUMN snapshot pg_snapshot;
