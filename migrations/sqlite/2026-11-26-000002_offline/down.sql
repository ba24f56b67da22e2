DROP TABLE offline_state;
DROP TABLE offline_conflicts;
DROP TABLE offline_shadow;
DROP TABLE offline_changes;
