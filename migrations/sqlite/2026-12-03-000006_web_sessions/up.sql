-- Browser sessions kept on the server (issue 12): the cookie carries only a random secret,
-- and this table says whether it still stands. Signing out deletes the row, so a copy of the
-- cookie taken before is worthless after; idle and absolute timeouts are checked against
-- the two times; "sign out everywhere" deletes all of a user's rows.
CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY NOT NULL,   -- SHA-256 of the cookie's secret, hex
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,     -- µs since the epoch
    seen_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);

-- A disabled user can neither sign in nor sync, and their sessions are gone.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

-- One account per name whatever its case ("Alice" is alice). Fails if two names already
-- differ only in case: rename one first.
CREATE UNIQUE INDEX users_name_folded ON users (LOWER(name));
