-- Which write of a memory's embedding its row holds: bumped only by a statement that sets
-- context_embedding, so a worker's cached vector stays valid while the row's flags change
-- (marked duplicate, archived, pinned, restored) and is read again once the vector is rewritten.
ALTER TABLE task_memories ADD COLUMN embedding_version bigint NOT NULL DEFAULT 1;

CREATE FUNCTION task_memories_bump_embedding_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.embedding_version := OLD.embedding_version + 1;
    RETURN NEW;
END;
$$;

CREATE TRIGGER task_memories_embedding_version BEFORE UPDATE OF context_embedding ON task_memories
    FOR EACH ROW EXECUTE FUNCTION task_memories_bump_embedding_version();

-- Which transaction last wrote the row at all (reuse counts included): a worker that keeps a
-- project's rows between jobs reads again only those its last read could not see.
ALTER TABLE task_memories ADD COLUMN touched_xid xid8 NOT NULL DEFAULT pg_current_xact_id();

CREATE FUNCTION task_memories_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.touched_xid := pg_current_xact_id();
    RETURN NEW;
END;
$$;

CREATE TRIGGER task_memories_touched BEFORE UPDATE ON task_memories
    FOR EACH ROW EXECUTE FUNCTION task_memories_touch();
