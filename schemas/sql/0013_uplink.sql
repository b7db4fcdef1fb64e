-- ParkPulse uplink, version 13: what the access-side system (接入端) uploads to the energy online-monitoring
-- platforms, one durable queue per platform endpoint. Runs on TimescaleDB 2.x and plain PostgreSQL >= 14.
--
-- uplink_records holds the latest revision of every computed record (schemas.uplink_record.UplinkRecord)
-- per profile; a recomputation with an unchanged value changes nothing, a changed value moves the old
-- revision to uplink_record_history and bumps the revision. uplink_deliveries is the per-endpoint queue:
-- one row per (endpoint, record_key) holding the revision to deliver and its state. Records are retained
-- without any pruning job (the specification asks for >= 6 months of local history, exportable).

CREATE TABLE uplink_records (
    profile           text NOT NULL CHECK (profile <> ''),
    record_key        text NOT NULL CHECK (record_key <> ''),   -- {park}|{item}|{period}|{local ISO start}
    park_id           text NOT NULL,
    data_item_code    text NOT NULL,
    period            text NOT NULL CHECK (period IN ('15min', 'hour', 'day', 'month')),
    period_start      timestamptz NOT NULL,
    revision          integer NOT NULL CHECK (revision >= 1),
    value             double precision NOT NULL,
    quality           text NOT NULL CHECK (quality IN ('measured', 'estimated', 'manual')),
    completeness      real NOT NULL CHECK (completeness BETWEEN 0 AND 1),
    payload           jsonb NOT NULL,                           -- the full record as computed (snapshot)
    computed_at       timestamptz NOT NULL,
    PRIMARY KEY (profile, record_key)
);
CREATE INDEX uplink_records_period_idx ON uplink_records (park_id, profile, period, period_start);

CREATE TABLE uplink_record_history (
    profile           text NOT NULL,
    record_key        text NOT NULL,
    revision          integer NOT NULL,
    value             double precision NOT NULL,
    payload           jsonb NOT NULL,
    computed_at       timestamptz NOT NULL,
    superseded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (profile, record_key, revision)
);

CREATE TABLE uplink_deliveries (
    endpoint          text NOT NULL CHECK (endpoint <> ''),
    profile           text NOT NULL,
    record_key        text NOT NULL,
    period_start      timestamptz NOT NULL,                     -- the record's, so the queue drains oldest first
    revision          integer NOT NULL,                         -- the record revision this row delivers
    state             text NOT NULL CHECK (state IN ('pending', 'sent', 'acked', 'rejected')),
    attempts          integer NOT NULL DEFAULT 0,
    last_error        text,                                     -- transport error of the last failed attempt
    platform_reason   text,                                     -- the platform's reason of a reject
    acked_revision    integer,                                  -- highest revision the platform acknowledged
    upload_id         text,                                     -- the batch of the last attempt
    enqueued_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at   timestamptz,
    acked_at          timestamptz,
    rejected_at       timestamptz,
    PRIMARY KEY (endpoint, record_key),
    FOREIGN KEY (profile, record_key) REFERENCES uplink_records (profile, record_key) ON DELETE CASCADE
);
CREATE INDEX uplink_deliveries_queue_idx ON uplink_deliveries (endpoint, period_start, record_key)
    WHERE state IN ('pending', 'sent');
CREATE INDEX uplink_deliveries_state_idx ON uplink_deliveries (endpoint, state);

-- The unit's basic information and instrument register: one delivery per endpoint and document kind,
-- re-sent when the content (its hash) changes.
CREATE TABLE uplink_register_deliveries (
    endpoint          text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('instruments', 'unit_info')),
    content_sha256    text NOT NULL,
    state             text NOT NULL CHECK (state IN ('pending', 'acked', 'rejected')),
    attempts          integer NOT NULL DEFAULT 0,
    last_error        text,
    platform_reason   text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    acked_at          timestamptz,
    PRIMARY KEY (endpoint, kind)
);

-- Quality self-checks (uplink/_quality.py): one row per park, profile, data item, day (or month start)
-- and check; a failed check keeps its reason (missing meter data, estimated share, late data, ...).
CREATE TABLE uplink_quality_flags (
    park_id           text NOT NULL,
    profile           text NOT NULL,
    data_item_code    text NOT NULL,
    day               date NOT NULL,                            -- the local day (the month's 1st for monthly checks)
    check_name        text NOT NULL CHECK (check_name IN ('completeness', 'consistency', 'alignment')),
    passed            boolean NOT NULL,
    value             double precision,
    threshold         double precision,
    reason            text,
    checked_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (park_id, profile, data_item_code, day, check_name)
);
CREATE INDEX uplink_quality_failed_idx ON uplink_quality_flags (park_id, day) WHERE NOT passed;
