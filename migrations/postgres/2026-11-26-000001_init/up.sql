-- Times are BIGINT microseconds since the Unix epoch (UTC); ids are TEXT (UUIDs).
-- Domain timestamps are TEXT in canonical RFC 3339 (UTC, microseconds, Z), which sorts as
-- time does; decimals are TEXT as written, compared as numbers by the application.

-- PostgreSQL serialises writers with advisory locks (see src/db/dialect.rs); the row
-- below exists so that both schemas have the same tables.

CREATE TABLE write_lock (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO write_lock (id, n) VALUES (1, 0);

CREATE TABLE sites (
    id TEXT PRIMARY KEY NOT NULL,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    address TEXT,
    access_notes TEXT,
    last_updated BIGINT NOT NULL,
    -- Who made the last write (a user, a device, an import): shown on conflict pages.
    changed_by TEXT
);
CREATE INDEX sites_changed ON sites (last_updated, id);

CREATE TABLE assets (
    id TEXT PRIMARY KEY NOT NULL,
    site_id TEXT NOT NULL REFERENCES sites (id),
    tag TEXT NOT NULL UNIQUE,
    description TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'degraded', 'broken', 'retired')),
    notes TEXT,
    last_updated BIGINT NOT NULL,
    -- Who made the last write (a user, a device, an import): shown on conflict pages.
    changed_by TEXT
);
CREATE INDEX assets_changed ON assets (last_updated, id);
CREATE INDEX assets_site ON assets (site_id);

CREATE TABLE inspections (
    id TEXT PRIMARY KEY NOT NULL,
    asset_id TEXT NOT NULL REFERENCES assets (id),
    inspected_at TEXT NOT NULL,
    inspector TEXT,
    result TEXT NOT NULL CHECK (result IN ('pass', 'fail')),
    summary TEXT,
    last_updated BIGINT NOT NULL,
    -- Who made the last write (a user, a device, an import): shown on conflict pages.
    changed_by TEXT
);
CREATE INDEX inspections_changed ON inspections (last_updated, id);
CREATE INDEX inspections_asset ON inspections (asset_id);

CREATE TABLE readings (
    id TEXT PRIMARY KEY NOT NULL,
    inspection_id TEXT NOT NULL REFERENCES inspections (id),
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    unit TEXT,
    last_updated BIGINT NOT NULL,
    -- Who made the last write (a user, a device, an import): shown on conflict pages.
    changed_by TEXT
);
CREATE INDEX readings_changed ON readings (last_updated, id);
CREATE INDEX readings_inspection ON readings (inspection_id);

-- Deleted rows, kept so that a device away for any time learns of the delete and its
-- edits of them are recognised; row_data keeps the last values (JSON) for restores.
CREATE TABLE tombstones (
    table_name TEXT NOT NULL,
    id TEXT NOT NULL,
    last_updated BIGINT NOT NULL,
    row_data TEXT,
    changed_by TEXT,
    PRIMARY KEY (table_name, id)
);
CREATE INDEX tombstones_changed ON tombstones (last_updated, table_name, id);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    is_conflict BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE devices (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    label TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_session_id TEXT
);
CREATE INDEX devices_user ON devices (user_id);

CREATE TABLE sync_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices (id),
    since BIGINT,
    started BIGINT NOT NULL,
    finished BIGINT,
    status TEXT NOT NULL CHECK (status IN ('open', 'complete', 'failed', 'abandoned')),
    clock_offset BIGINT,
    upload_sha256 TEXT,
    upload_result TEXT,
    applied BIGINT,
    unchanged BIGINT,
    conflicts BIGINT,
    downloaded BIGINT,
    failure TEXT
);
CREATE INDEX sync_sessions_device ON sync_sessions (device_id, started);

CREATE TABLE conflicts (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    device_id TEXT NOT NULL REFERENCES devices (id),
    session_id TEXT,
    table_name TEXT NOT NULL,
    row_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('fields', 'delete', 'edit_deleted', 'duplicate')),
    client_id TEXT,
    base BIGINT,
    server_updated BIGINT,
    offline_updated BIGINT,
    status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    resolved_at BIGINT,
    resolved_by TEXT,
    resolution TEXT
);
-- One open conflict per user and row.
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

-- A client's id for a row that the server already had under another id (PROTOCOL §4.5).
CREATE TABLE aliases (
    table_name TEXT NOT NULL,
    client_id TEXT NOT NULL,
    canonical_id TEXT NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices (id),
    sent_in_session TEXT,
    acknowledged BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (table_name, client_id)
);
CREATE INDEX aliases_pending ON aliases (device_id, acknowledged);
