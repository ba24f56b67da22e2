-- The offline copy's own tables (used only by `offsync offline` / `offsync sync`, which run
-- on a laptop's SQLite database; present everywhere so that one schema serves both).

-- Every local create, edit and delete, in order, until a completed sync has uploaded it.
-- `fields` is JSON: [{"field": name, "value": v|null, "was": v|null}].
CREATE TABLE offline_changes (
    seq BIGINT PRIMARY KEY NOT NULL,
    table_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('create', 'edit', 'delete')),
    base BIGINT,
    fields TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE INDEX offline_changes_row ON offline_changes (table_name, row_id, seq);

-- The server's value of a field the laptop has changed and not yet synced, as last
-- downloaded: to tell after an upload whether the server kept its own value (a conflict).
CREATE TABLE offline_shadow (
    table_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (table_name, row_id, field)
);

-- Local changes the server did not take (it recorded a conflict to resolve on the main site).
CREATE TABLE offline_conflicts (
    table_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    field TEXT NOT NULL,
    local_value TEXT,
    server_value TEXT,
    marked_at BIGINT NOT NULL,
    PRIMARY KEY (table_name, row_id, field)
);

-- Small facts about the laptop's sync: last completed sync, last summary.
CREATE TABLE offline_state (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT
);
