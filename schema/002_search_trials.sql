-- Search trials carry their state, the raw decision values (to rebuild a strategy after a restart)
-- and every objective's value; a search records why it ended.
ALTER TABLE searches ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE search_trials ADD COLUMN state TEXT NOT NULL DEFAULT 'running';  -- running | succeeded | failed | pruned
ALTER TABLE search_trials ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE search_trials ADD COLUMN assignment TEXT NOT NULL DEFAULT '[]';  -- one number per dimension (JSON)
ALTER TABLE search_trials ADD COLUMN objectives TEXT NOT NULL DEFAULT '[]';  -- one value per objective (JSON)
ALTER TABLE search_trials ADD COLUMN created REAL NOT NULL DEFAULT 0;
ALTER TABLE search_trials ADD COLUMN ended REAL;
