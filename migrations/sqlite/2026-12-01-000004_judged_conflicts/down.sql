DROP TABLE offline_held;
DROP TABLE resends;
