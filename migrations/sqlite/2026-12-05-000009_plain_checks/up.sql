-- An asset's status is checked with plain comparisons: SQLite runs `status IN (4 values)`
-- by building a temporary b-tree of the four values for every row it writes (a list of more
-- than two is looked up, not compared), which was a quarter of the database work of an
-- upload editing assets (docs/performance.md). Same rule, same data; the table is rebuilt
-- because SQLite cannot alter a CHECK (https://sqlite.org/lang_altertable.html#otheralter).
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE assets_rebuilt (
    id TEXT PRIMARY KEY NOT NULL,
    site_id TEXT NOT NULL REFERENCES sites (id),
    tag TEXT NOT NULL UNIQUE,
    description TEXT,
    status TEXT NOT NULL
        CHECK (status = 'ok' OR status = 'degraded' OR status = 'broken' OR status = 'retired'),
    notes TEXT,
    last_updated BIGINT NOT NULL,
    -- Who made the last write (a user, a device, an import): shown on conflict pages.
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
