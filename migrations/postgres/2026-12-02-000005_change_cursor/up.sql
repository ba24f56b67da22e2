-- The change cursor (docs/architecture.md, "No change is missed"): every write of a synced
-- row or a tombstone records the id of the transaction that made it (PostgreSQL: the
-- transaction's xid8; SQLite: the write_lock counter, incremented by each write
-- transaction), and each session keeps the snapshot it was opened in. A download sends the
-- rows written by the transactions that are visible in its own snapshot and were not in the
-- snapshot of the device's last completed session. Rows written before this migration have
-- 0, visible in every snapshot: a device that synced before the upgrade gets them by
-- last_updated once more.
ALTER TABLE sites ADD COLUMN change_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE assets ADD COLUMN change_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE inspections ADD COLUMN change_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE readings ADD COLUMN change_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tombstones ADD COLUMN change_id BIGINT NOT NULL DEFAULT 0;
CREATE INDEX sites_cursor ON sites (change_id, id);
CREATE INDEX assets_cursor ON assets (change_id, id);
CREATE INDEX inspections_cursor ON inspections (change_id, id);
CREATE INDEX readings_cursor ON readings (change_id, id);
CREATE INDEX tombstones_cursor ON tombstones (change_id, table_name, id);
-- Downloads no longer page by last_updated: one index less for every write to maintain.
DROP INDEX sites_changed;
DROP INDEX assets_changed;
DROP INDEX inspections_changed;
DROP INDEX readings_changed;
DROP INDEX tombstones_changed;

-- What the session's download covers: the snapshot it was opened in ("xmin:xmax:xip,..."
-- as PostgreSQL writes a pg_snapshot), and once it has uploaded "+" the upload's transaction;
-- what the device's last completed session covered, when this one was opened; the offsync
-- version the device named.
ALTER TABLE sync_sessions ADD COLUMN cursor TEXT;
ALTER TABLE sync_sessions ADD COLUMN cursor_from TEXT;
ALTER TABLE sync_sessions ADD COLUMN client_version TEXT;
