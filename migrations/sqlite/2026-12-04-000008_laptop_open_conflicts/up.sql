-- The laptop's copy of its user's open conflicts on the main site, as of its last
-- completed sync (replaced whole each time): shown offline, read-only. `fields` is JSON:
-- [{"name": field, "server": v|null, "offline": v|null}].
CREATE TABLE offline_open_conflicts (
    id TEXT PRIMARY KEY NOT NULL,
    table_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    recorded TEXT NOT NULL,
    server_by TEXT,
    server_at TEXT,
    fields TEXT NOT NULL
);
CREATE INDEX offline_open_conflicts_row ON offline_open_conflicts (table_name, row_id);
