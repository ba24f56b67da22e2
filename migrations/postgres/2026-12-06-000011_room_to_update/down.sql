ALTER TABLE sites RESET (fillfactor);
ALTER TABLE assets RESET (fillfactor);
ALTER TABLE inspections RESET (fillfactor);
ALTER TABLE readings RESET (fillfactor);
