DROP TABLE offline_held;
DROP TABLE resends;
ALTER TABLE conflicts DROP COLUMN server_by;
