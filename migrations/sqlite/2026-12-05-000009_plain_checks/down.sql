PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE assets_rebuilt (
    id TEXT PRIMARY KEY NOT NULL,
    site_id TEXT NOT NULL REFERENCES sites (id),
    tag TEXT NOT NULL UNIQUE,
    description TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'degraded', 'broken', 'retired')),
    notes TEXT,
    last_updated BIGINT NOT NULL,
    changed_by TEXT,
    change_id BIGINT NOT NULL DEFAULT 0
);
INSERT INTO assets_rebuilt (rowid, id, site_id, tag, description, status, notes, last_updated,
                            changed_by, change_id)
    SELECT rowid, id, site_id, tag, description, status, notes, last_updated, changed_by, change_id
    FROM assets ORDER BY rowid;
DROP TABLE assets;
ALTER TABLE assets_rebuilt RENAME TO assets;
CREATE INDEX assets_site ON assets (site_id);
CREATE INDEX assets_cursor ON assets (change_id, id);
COMMIT;
PRAGMA foreign_keys = ON;
