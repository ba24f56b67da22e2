-- Conflicts gain a kind (a row created under a parent the server deleted) and remember who
-- made the server's side, as the row stood before the upload touched it.
ALTER TABLE conflicts DROP CONSTRAINT conflicts_kind_check;
ALTER TABLE conflicts ADD CONSTRAINT conflicts_kind_check
    CHECK (kind IN ('fields', 'delete', 'edit_deleted', 'duplicate', 'parent_deleted'));
ALTER TABLE conflicts ADD COLUMN server_by TEXT;

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
