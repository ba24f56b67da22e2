-- Conflicts gain a kind (a row created under a parent the server deleted) and remember who
-- made the server's side, as the row stood before the upload touched it. SQLite cannot
-- change a CHECK in place: the table is rebuilt, its fields set aside and put back.
CREATE TABLE conflict_fields_copy AS SELECT * FROM conflict_fields;
DROP TABLE conflict_fields;

CREATE TABLE conflicts_new (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    device_id TEXT NOT NULL REFERENCES devices (id),
    session_id TEXT,
    table_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('fields', 'delete', 'edit_deleted', 'duplicate', 'parent_deleted')),
    client_id TEXT,
    base BIGINT,
    server_updated BIGINT,
    offline_updated BIGINT,
    status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    resolved_at BIGINT,
    resolved_by TEXT,
    resolution TEXT,
    server_by TEXT
);
INSERT INTO conflicts_new (id, user_id, device_id, session_id, table_name, row_id, kind,
    client_id, base, server_updated, offline_updated, status, created_at, updated_at,
    resolved_at, resolved_by, resolution)
SELECT id, user_id, device_id, session_id, table_name, row_id, kind,
    client_id, base, server_updated, offline_updated, status, created_at, updated_at,
    resolved_at, resolved_by, resolution FROM conflicts;
DROP TABLE conflicts;
ALTER TABLE conflicts_new RENAME TO conflicts;
CREATE UNIQUE INDEX conflicts_one_open ON conflicts (user_id, table_name, row_id) WHERE status = 'open';
CREATE INDEX conflicts_by_user ON conflicts (user_id, status, created_at);

CREATE TABLE conflict_fields (
    conflict_id TEXT NOT NULL REFERENCES conflicts (id),
    field TEXT NOT NULL,
    base_known BOOLEAN NOT NULL,
    base_value TEXT,
    server_value TEXT,
    offline_value TEXT,
    choice TEXT,
    chosen_value TEXT,
    PRIMARY KEY (conflict_id, field)
);
INSERT INTO conflict_fields SELECT * FROM conflict_fields_copy;
DROP TABLE conflict_fields_copy;

-- Rows a device deleted that the server kept (a stale delete): they and everything below
-- them go to that device again, until it completes a session whose download carried them.
CREATE TABLE resends (
    device_id TEXT NOT NULL REFERENCES devices (id),
    table_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    sent_in_session TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, table_name, row_id)
);

-- The laptop's changes the server refused (a 422 naming the row): kept out of later
-- uploads, so that the rest syncs, until the engineer corrects or discards them.
CREATE TABLE offline_held (
    table_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    code TEXT NOT NULL,
    field TEXT,
    message TEXT NOT NULL,
    held_at BIGINT NOT NULL,
    PRIMARY KEY (table_name, row_id)
);
