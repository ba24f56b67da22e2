-- Roles (issue 12): 'administrator', 'office' (every field; PROTOCOL §1's online users, and
-- what a user made without a role is) or 'engineer' (online, what a laptop may do).
-- is_admin stays, true exactly for administrators.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'office'
    CHECK (role IN ('administrator', 'office', 'engineer'));
UPDATE users SET role = 'administrator' WHERE is_admin;
