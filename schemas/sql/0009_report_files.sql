-- Monthly report files written by the aggregation schedule (reports/_schedule.py, `parkpulse aggregate
-- --reports-dir DIR`): one row per park, local month and format. A closed month's file is written once, and
-- rewritten when the month's published indicators change (the fingerprint over indicator_results differs)
-- or the file has gone from disk.
CREATE TABLE report_files (
    park_id                 text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    period                  text NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),   -- park-local month
    format                  text NOT NULL CHECK (format IN ('xlsx', 'pdf')),
    path                    text NOT NULL,
    size_bytes              bigint NOT NULL CHECK (size_bytes > 0),
    sha256                  text NOT NULL,
    indicators_fingerprint  text NOT NULL,         -- md5 over (indicator, variant, subject, revision, value, status)
    written_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (park_id, period, format)
);
