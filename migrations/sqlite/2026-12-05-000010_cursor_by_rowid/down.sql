DROP INDEX sites_cursor;
DROP INDEX assets_cursor;
DROP INDEX inspections_cursor;
DROP INDEX readings_cursor;
CREATE INDEX sites_cursor ON sites (change_id, id);
CREATE INDEX assets_cursor ON assets (change_id, id);
CREATE INDEX inspections_cursor ON inspections (change_id, id);
CREATE INDEX readings_cursor ON readings (change_id, id);
