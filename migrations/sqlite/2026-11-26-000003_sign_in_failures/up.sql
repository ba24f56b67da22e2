-- Failed sign-ins, kept for the rate-limit window: in the database rather than in memory,
-- so that every instance on one database counts the same attempts.
CREATE TABLE sign_in_failures (
    scope TEXT NOT NULL,        -- 'account' (the name tried) or 'address' (the client's IP)
    subject TEXT NOT NULL,
    at BIGINT NOT NULL          -- µs since the epoch
);
CREATE INDEX sign_in_failures_subject ON sign_in_failures (scope, subject, at);
