-- Synced rows leave a fifth of each page free, so that an update's new row version can go
-- on the row's own page. At 100% every new version went to the table's last page, where
-- concurrent uploads queued for that one page and for extending the table
-- (docs/performance.md). Existing pages keep their fill until rewritten or vacuumed.
ALTER TABLE sites SET (fillfactor = 80);
ALTER TABLE assets SET (fillfactor = 80);
ALTER TABLE inspections SET (fillfactor = 80);
ALTER TABLE readings SET (fillfactor = 80);
