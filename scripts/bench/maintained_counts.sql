-- What keeping memory counts per statement costs a write (docs/benchmarks.md): the same inserts
-- and flag updates without, then with, a statement-level trigger over transition tables, as
-- migrations/20261204000012 keeps them. Run: psql -U postgres -h 127.0.0.1 -f scripts/bench/maintained_counts.sql
DROP TABLE IF EXISTS tm; DROP TABLE IF EXISTS pc;
CREATE TABLE tm (id serial PRIMARY KEY, project_id int, is_archived bool DEFAULT false, is_duplicate bool DEFAULT false, emb bytea, summary text);
ALTER TABLE tm ALTER COLUMN emb SET STORAGE EXTERNAL;
CREATE TABLE pc (project_id int PRIMARY KEY, active bigint default 0, duplicates bigint default 0, archived bigint default 0);
\timing on
INSERT INTO tm (project_id, emb, summary) SELECT 1, decode(repeat(md5(g::text), 384), 'hex'), repeat('x', 200) FROM generate_series(1, 20000) g;
UPDATE tm SET is_duplicate = true WHERE id % 10 = 0;
UPDATE tm SET is_duplicate = false WHERE id % 10 = 0;
CREATE FUNCTION pc_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
 IF TG_OP = 'INSERT' THEN
  INSERT INTO pc AS c SELECT project_id, count(*) FILTER (WHERE NOT is_archived AND NOT is_duplicate), count(*) FILTER (WHERE is_duplicate), count(*) FILTER (WHERE is_archived AND NOT is_duplicate) FROM added GROUP BY project_id
  ON CONFLICT (project_id) DO UPDATE SET active = c.active + EXCLUDED.active;
 ELSE
  INSERT INTO pc AS c SELECT project_id, sum(a), sum(d), sum(r) FROM (SELECT project_id, (NOT is_archived AND NOT is_duplicate)::int a, is_duplicate::int d, (is_archived AND NOT is_duplicate)::int r FROM added UNION ALL SELECT project_id, -(NOT is_archived AND NOT is_duplicate)::int, -(is_duplicate::int), -((is_archived AND NOT is_duplicate)::int) FROM removed) m GROUP BY project_id HAVING sum(a) <> 0 OR sum(d) <> 0 OR sum(r) <> 0
  ON CONFLICT (project_id) DO UPDATE SET active = c.active + EXCLUDED.active;
 END IF;
 RETURN NULL;
END $$;
CREATE TRIGGER ti AFTER INSERT ON tm REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION pc_add();
CREATE TRIGGER tu AFTER UPDATE ON tm REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION pc_add();
INSERT INTO tm (project_id, emb, summary) SELECT 1, decode(repeat(md5(g::text), 384), 'hex'), repeat('x', 200) FROM generate_series(1, 20000) g;
UPDATE tm SET is_duplicate = true WHERE id % 10 = 0;
UPDATE tm SET is_duplicate = false WHERE id % 10 = 0;
DROP TABLE tm; DROP TABLE pc; DROP FUNCTION pc_add();

-- The per-row variant, tried and dropped: 30 000 flag changes in one statement update one counter
-- row 30 000 times in the transaction.
DROP TABLE IF EXISTS tm; DROP TABLE IF EXISTS pc;
CREATE TABLE tm (id serial PRIMARY KEY, project_id int, is_archived bool DEFAULT false, is_duplicate bool DEFAULT false, emb bytea, summary text);
ALTER TABLE tm ALTER COLUMN emb SET STORAGE EXTERNAL;
CREATE TABLE pc (project_id int PRIMARY KEY, active bigint default 0, duplicates bigint default 0, archived bigint default 0);
INSERT INTO tm (project_id, emb, summary) SELECT 1, decode(repeat(md5(g::text), 384), 'hex'), repeat('x', 200) FROM generate_series(1, 60000) g;
\timing on
UPDATE tm SET is_duplicate = true WHERE id % 2 = 0;
UPDATE tm SET is_duplicate = false WHERE id % 2 = 0;
CREATE FUNCTION pc_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pc AS c VALUES (NEW.project_id,
     (NOT NEW.is_archived AND NOT NEW.is_duplicate)::int - (NOT OLD.is_archived AND NOT OLD.is_duplicate)::int,
     NEW.is_duplicate::int - OLD.is_duplicate::int,
     (NEW.is_archived AND NOT NEW.is_duplicate)::int - (OLD.is_archived AND NOT OLD.is_duplicate)::int)
  ON CONFLICT (project_id) DO UPDATE SET active = c.active + EXCLUDED.active, duplicates = c.duplicates + EXCLUDED.duplicates, archived = c.archived + EXCLUDED.archived;
  RETURN NULL;
END $$;
CREATE TRIGGER tu AFTER UPDATE OF is_archived, is_duplicate ON tm FOR EACH ROW
  WHEN (OLD.is_archived IS DISTINCT FROM NEW.is_archived OR OLD.is_duplicate IS DISTINCT FROM NEW.is_duplicate)
  EXECUTE FUNCTION pc_row();
UPDATE tm SET is_duplicate = true WHERE id % 2 = 0;
UPDATE tm SET is_duplicate = false WHERE id % 2 = 0;
UPDATE tm SET summary = 'y' WHERE id % 2 = 0;
DROP TABLE tm; DROP TABLE pc; DROP FUNCTION pc_row();
