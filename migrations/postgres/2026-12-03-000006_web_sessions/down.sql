DROP INDEX users_name_folded;
ALTER TABLE users DROP COLUMN disabled_at;
DROP TABLE web_sessions;
