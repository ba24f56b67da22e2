DROP TABLE offline_open_conflicts;
