-- Each synced row carries its place among its transaction's writes (`seq`, the next value
-- of one sequence at every write: an insert by the default, an update by offsync), and the
-- change cursor's indexes are on (change_id, seq, id). With (change_id, id), an upload's
-- rows, which all have one change id, put each new index entry among 100,000 random ids;
-- in seq order they go at the index's end, half the time of each written row
-- (docs/performance.md). Rows written before have seq 0 and are ordered by id.
CREATE SEQUENCE row_seq CACHE 100;
ALTER TABLE sites ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE assets ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE inspections ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE readings ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
-- Only new rows take the sequence (an existing row keeps 0 without a rewrite).
ALTER TABLE sites ALTER COLUMN seq SET DEFAULT nextval('row_seq');
ALTER TABLE assets ALTER COLUMN seq SET DEFAULT nextval('row_seq');
ALTER TABLE inspections ALTER COLUMN seq SET DEFAULT nextval('row_seq');
ALTER TABLE readings ALTER COLUMN seq SET DEFAULT nextval('row_seq');
DROP INDEX sites_cursor;
DROP INDEX assets_cursor;
DROP INDEX inspections_cursor;
DROP INDEX readings_cursor;
CREATE INDEX sites_cursor ON sites (change_id, seq, id);
CREATE INDEX assets_cursor ON assets (change_id, seq, id);
CREATE INDEX inspections_cursor ON inspections (change_id, seq, id);
CREATE INDEX readings_cursor ON readings (change_id, seq, id);
