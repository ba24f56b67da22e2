-- The change cursor's indexes on SQLite are on change_id alone: SQLite orders the entries
-- of equal keys by rowid, and downloads walk a change id's rows in rowid order
-- (db::repo::rows, Walk::ChangeRowid). The id beside the change id made each written row's
-- new entry a 36-character key placed among all the others (an upload writes every row
-- with one change id); a number beside a number halves the index work of a write
-- (docs/performance.md). Tombstones keep (change_id, table_name, id).
DROP INDEX sites_cursor;
DROP INDEX assets_cursor;
DROP INDEX inspections_cursor;
DROP INDEX readings_cursor;
CREATE INDEX sites_cursor ON sites (change_id);
CREATE INDEX assets_cursor ON assets (change_id);
CREATE INDEX inspections_cursor ON inspections (change_id);
CREATE INDEX readings_cursor ON readings (change_id);
