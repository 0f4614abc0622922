-- Base tables a bare database lacks: projects, their task memories, file links and playbook.

CREATE TABLE projects (
    id                      uuid PRIMARY KEY,
    name                    text NOT NULL CONSTRAINT projects_name_check CHECK (length(name) BETWEEN 1 AND 200),
    consolidation_enabled   boolean NOT NULL DEFAULT true,
    consolidation_threshold integer NOT NULL DEFAULT 1000
        CONSTRAINT projects_threshold_check CHECK (consolidation_threshold BETWEEN 1 AND 1000000),
    consolidation_options   jsonb NOT NULL DEFAULT '{}'::jsonb
        CONSTRAINT projects_options_check CHECK (jsonb_typeof(consolidation_options) = 'object'),
    embedding_dim           integer CONSTRAINT projects_embedding_dim_check CHECK (embedding_dim BETWEEN 1 AND 16384),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_enabled_idx ON projects (id) WHERE consolidation_enabled;

CREATE TABLE task_memories (
    id                   uuid PRIMARY KEY,
    project_id           uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task_id              text,
    execution_summary    text NOT NULL CONSTRAINT task_memories_summary_check CHECK (length(execution_summary) > 0),
    memory_type          text NOT NULL CONSTRAINT task_memories_memory_type_check CHECK (memory_type IN (
                             'error_fix', 'discovery', 'decision', 'learning', 'warning',
                             'codebase_knowledge', 'consolidated', 'synthesis')),
    goal                 text,
    result               text,
    feedback             text,
    tags                 text[] NOT NULL DEFAULT '{}',
    context_embedding    bytea CONSTRAINT task_memories_embedding_check CHECK (octet_length(context_embedding) % 4 = 0),
    success              boolean,
    reused_count         integer NOT NULL DEFAULT 0 CONSTRAINT task_memories_reused_count_check CHECK (reused_count >= 0),
    last_reused_at       timestamptz,
    learned_at           timestamptz NOT NULL DEFAULT now(),
    is_duplicate         boolean NOT NULL DEFAULT false,
    duplicate_of         uuid REFERENCES task_memories (id) ON DELETE SET NULL,
    version              bigint NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    consolidated_from    uuid[],
    consolidated_at      timestamptz,
    synthesized_from     uuid[],
    synthesized_at       timestamptz,
    synthesis_confidence real CONSTRAINT task_memories_synthesis_confidence_check
                             CHECK (synthesis_confidence BETWEEN 0 AND 1),
    needs_review         boolean NOT NULL DEFAULT false,
    is_archived          boolean NOT NULL DEFAULT false,
    archived_at          timestamptz,
    archive_reason       text CONSTRAINT task_memories_archive_reason_check
                             CHECK (archive_reason IN ('staleness', 'low_value', 'manual')),
    CONSTRAINT task_memories_archive_state_check CHECK (is_archived OR archive_reason IS NULL)
);
-- Embeddings are random floats: compression never wins, so skip the attempt.
ALTER TABLE task_memories ALTER COLUMN context_embedding SET STORAGE EXTERNAL;

-- The consolidation snapshot and the active counts read only live memories.
CREATE INDEX task_memories_active_idx ON task_memories (project_id, id)
    WHERE NOT is_archived AND NOT is_duplicate;
CREATE INDEX task_memories_project_idx ON task_memories (project_id, id);
CREATE INDEX task_memories_project_type_idx ON task_memories (project_id, memory_type, id);
CREATE INDEX task_memories_duplicate_of_idx ON task_memories (duplicate_of) WHERE duplicate_of IS NOT NULL;

-- Every update moves the version: the optimistic-concurrency check of consolidation and rollback.
CREATE FUNCTION task_memories_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
CREATE TRIGGER task_memories_version BEFORE UPDATE ON task_memories
    FOR EACH ROW EXECUTE FUNCTION task_memories_bump_version();

CREATE TABLE memory_files (
    memory_id uuid NOT NULL REFERENCES task_memories (id) ON DELETE CASCADE,
    path      text NOT NULL CONSTRAINT memory_files_path_check CHECK (length(path) BETWEEN 1 AND 4096),
    PRIMARY KEY (memory_id, path)
);

CREATE TABLE playbook_entries (
    id                    uuid PRIMARY KEY,
    project_id            uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    content               text NOT NULL CONSTRAINT playbook_entries_content_check CHECK (length(content) > 0),
    category              text NOT NULL CONSTRAINT playbook_entries_category_check
                              CHECK (category ~ '^[a-z][a-z_]{0,39}$'),
    tags                  text[] NOT NULL DEFAULT '{}',
    priority              integer NOT NULL DEFAULT 5 CONSTRAINT playbook_entries_priority_check CHECK (priority BETWEEN 1 AND 10),
    supporting_memory_ids uuid[] NOT NULL DEFAULT '{}',
    embedding             bytea,
    is_active             boolean NOT NULL DEFAULT true,
    source_memory_id      uuid,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE playbook_entries ALTER COLUMN embedding SET STORAGE EXTERNAL;
CREATE INDEX playbook_entries_active_idx ON playbook_entries (project_id, id) WHERE is_active;

CREATE TABLE playbook_changes (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id        uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    entry_id          uuid NOT NULL,
    operation         text NOT NULL CONSTRAINT playbook_changes_operation_check
                          CHECK (operation IN ('add', 'update', 'delete', 'promote')),
    old_content       text,
    new_content       text,
    reason            text,
    related_memory_id uuid,
    job_id            uuid,
    changed_by        text NOT NULL,
    changed_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX playbook_changes_entry_idx ON playbook_changes (entry_id, id);
CREATE INDEX playbook_changes_project_idx ON playbook_changes (project_id, id);
