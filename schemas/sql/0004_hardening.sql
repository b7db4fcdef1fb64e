-- ParkPulse hardening, version 4: a registry that ingest enforces, a bounded quarantine that can be
-- replayed, and API key scopes. Runs on TimescaleDB 2.x and plain PostgreSQL >= 14.

-- Ingest accepts readings only for registered devices of registered parks. A park set to auto-register
-- lets ingest create devices it has not seen before (the behaviour before version 4); every other
-- unknown park or device is quarantined as 'unregistered' and can be replayed once registered.
ALTER TABLE parks ADD COLUMN auto_register boolean NOT NULL DEFAULT false;
-- Who put the device into the registry: 'operator' (CLI, API, import) or 'auto' (ingest, auto-register park).
ALTER TABLE devices ADD COLUMN registered_by text NOT NULL DEFAULT 'auto'
    CHECK (registered_by IN ('operator', 'auto'));
ALTER TABLE devices ADD COLUMN registered_at timestamptz NOT NULL DEFAULT now();

-- Quarantine is bounded: raw bytes are kept up to a cap (the ingest setting quarantine_raw_cap_bytes),
-- with the full length and the SHA-256 of the whole payload, so a truncated record still proves what
-- arrived. Only untruncated records can be replayed.
ALTER TABLE quarantine ADD COLUMN raw_length integer;
ALTER TABLE quarantine ADD COLUMN raw_sha256 bytea;
UPDATE quarantine SET raw_length = length(raw), raw_sha256 = sha256(raw);
ALTER TABLE quarantine ALTER COLUMN raw_length SET NOT NULL;
ALTER TABLE quarantine ALTER COLUMN raw_sha256 SET NOT NULL;
ALTER TABLE quarantine ADD COLUMN raw_truncated boolean NOT NULL DEFAULT false;
-- Replay (parkpulse quarantine replay): when it last ran on this record and what came of it.
ALTER TABLE quarantine ADD COLUMN replayed_at timestamptz;
ALTER TABLE quarantine ADD COLUMN replay_outcome text;       -- stored | rejected | not_replayable
ALTER TABLE quarantine ADD COLUMN replay_detail text;
CREATE INDEX quarantine_device_idx ON quarantine (park_id, device_id, received_at);

-- Rejects over a device's rate limit are not kept one by one: they are counted here per minute, so a
-- device that floods bad messages cannot fill the database, and the operator still sees how much came.
CREATE TABLE quarantine_suppressed (
    park_id        text NOT NULL,               -- '' when the topic named no valid park
    device_id      text NOT NULL,               -- '' when the topic named no valid device
    reason         text NOT NULL,
    window_start   timestamptz NOT NULL,        -- the UTC minute
    n_messages     bigint NOT NULL,
    n_bytes        bigint NOT NULL,
    PRIMARY KEY (park_id, device_id, reason, window_start)
);

-- API keys carry scopes: 'read' (every GET) and 'write' (operator actions such as quarantine replay).
-- Keys made before version 4 keep read-only access.
ALTER TABLE api_clients ADD COLUMN scopes text[] NOT NULL DEFAULT ARRAY['read']::text[]
    CHECK (scopes <@ ARRAY['read', 'write']::text[]);
