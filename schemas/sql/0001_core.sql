-- ParkPulse core schema, version 1.
-- Runs on TimescaleDB 2.x (readings become a hypertable) and on plain PostgreSQL >= 14.
-- All timestamps are timestamptz (stored UTC); calendar days and months are computed in parks.timezone.

CREATE TABLE parks (
    park_id        text PRIMARY KEY,
    name           text,
    timezone       text NOT NULL DEFAULT 'Asia/Shanghai',
    province       text,                       -- selects provincial emission factors
    grid_region    text,                       -- 华北/华东/南方 ... fallback for factors
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Sites are buildings, workshops, stations or data centres inside a park (GB 17167 次级用能单位).
CREATE TABLE sites (
    park_id              text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    site_id              text NOT NULL,
    name                 text,
    kind                 text NOT NULL DEFAULT 'building',  -- building | workshop | station | data_centre ...
    floor_area_m2        double precision CHECK (floor_area_m2 IS NULL OR floor_area_m2 > 0),
    is_public_building   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (park_id, site_id)
);

CREATE TABLE devices (
    device_key          serial PRIMARY KEY,
    park_id             text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    device_id           text NOT NULL,
    site_id             text,
    kind                text,                   -- electricity_meter | gas_meter | heat_meter | pv_inverter | battery | ev_charger ...
    carrier             text,                   -- electricity | gas | heat | cooling | water | steam | none
    metering_level      smallint CHECK (metering_level IN (1, 2, 3)),  -- GB 17167 一级/二级/三级
    role                text,                   -- e.g. park_boundary, dc_facility, dc_it, pv, ev, public_building
    profile             text,                   -- device profile (register map) name
    firmware            text,
    register_max        double precision,       -- register maximum before wrap, in the metric's canonical unit
    multiplier          double precision NOT NULL DEFAULT 1 CHECK (multiplier > 0),  -- CT x PT when secondary-metered
    rated_power_kw      double precision,       -- for plausibility limits (max power x dt)
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_seen_at       timestamptz NOT NULL DEFAULT now(),
    birth_at            timestamptz,
    UNIQUE (park_id, device_id)
);

-- One series per (device, metric); the readings table stays narrow.
CREATE TABLE series (
    series_id      serial PRIMARY KEY,
    device_key     integer NOT NULL REFERENCES devices (device_key) ON DELETE CASCADE,
    metric         text NOT NULL,
    unit           text NOT NULL,           -- canonical unit of the metric (schemas.metrics)
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_key, metric)
);

-- The narrow readings table. The primary key makes every write idempotent: a redelivered or replayed
-- reading (same series, same timestamp) is skipped by INSERT ... ON CONFLICT DO NOTHING.
CREATE TABLE readings (
    series_id   integer NOT NULL,
    ts          timestamptz NOT NULL,
    value       double precision NOT NULL,
    quality     smallint NOT NULL DEFAULT 0,     -- schemas.Quality: 0 good, 1 estimated, 2 suspect, 3 bad
    PRIMARY KEY (series_id, ts)
);

-- Change log written in the same transaction as the readings: which series got new data for which time
-- range. Aggregation jobs read it past their watermark to recompute exactly the affected intervals.
CREATE TABLE reading_changes (
    change_id      bigserial PRIMARY KEY,
    series_id      integer NOT NULL,
    ts_min         timestamptz NOT NULL,
    ts_max         timestamptz NOT NULL,
    n_rows         integer NOT NULL,
    committed_at   timestamptz NOT NULL DEFAULT now()
);

-- Bad input is kept, never dropped: the raw bytes, where they came from and why they were rejected.
CREATE TABLE quarantine (
    quarantine_id    bigserial PRIMARY KEY,
    received_at      timestamptz NOT NULL DEFAULT now(),
    source           text NOT NULL DEFAULT 'mqtt',     -- mqtt | import
    topic            text,
    park_id          text,
    device_id        text,
    reason           text NOT NULL,                    -- schemas.RejectReason of the first problem
    detail           text NOT NULL,
    n_rejected       integer NOT NULL DEFAULT 1,       -- readings rejected (0 when only the envelope failed)
    n_accepted       integer NOT NULL DEFAULT 0,       -- readings of the same message that were stored
    raw              bytea NOT NULL
);
CREATE INDEX quarantine_received_at_idx ON quarantine (received_at);
CREATE INDEX quarantine_reason_idx ON quarantine (reason, received_at);

-- Last known session state per device: freshness, sequence numbers and clock offset.
CREATE TABLE device_status (
    device_key        integer PRIMARY KEY REFERENCES devices (device_key) ON DELETE CASCADE,
    last_seen_at      timestamptz NOT NULL,            -- broker receive time of the last message
    last_reading_ts   timestamptz,                     -- newest measurement timestamp seen
    last_seq          bigint,
    clock_offset_s    double precision,                -- device sent_at minus ingest receive time
    online            boolean,
    backlog           bigint,
    status_at         timestamptz
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('readings', by_range('ts', INTERVAL '7 days'));
    END IF;
END
$$;
