-- The earliest reading time each aggregation run recomputed from (issue 14 follow-up). Downstream hooks
-- (the platform uplink) recompute from there instead of a fixed look-back, so a late reading older than
-- the look-back still revises what was sent. NULL: nothing changed (or a run before this migration);
-- a full rebuild records its lower bound (1900-01-01), and readers cap it to their own horizon.
ALTER TABLE aggregation_runs ADD COLUMN IF NOT EXISTS earliest_change timestamptz;
