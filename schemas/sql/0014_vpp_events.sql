-- ParkPulse VPP event intake, version 14: DR events received from OpenADR 2.0b/3 VTNs, every version as
-- received (audit), and each park's intake policy. Written by vpp/ (vpp/_intake_store.py); runs on
-- TimescaleDB 2.x and plain PostgreSQL >= 14.
--
-- One vpp_events row per VTN event, keyed by (source, vtn_id, vtn_event_id): the version in force (highest
-- modification number), the opt decision and its reason. An opted-in event is also a flex DR event
-- (dr_events, migration 0003) under dr_event_id, which the dispatcher and M&V use. park_id has no foreign
-- key: an event for an unknown park is still recorded (and opted out) so the utility can be told why.

CREATE TABLE vpp_events (
    source               text NOT NULL CHECK (source IN ('oadr2', 'oadr3')),
    vtn_id               text NOT NULL,
    vtn_event_id         text NOT NULL,
    dr_event_id          text NOT NULL UNIQUE CHECK (dr_event_id ~ '^[A-Za-z0-9_-]{1,128}$'),
    park_id              text NOT NULL,
    modification_number  integer NOT NULL,
    vtn_status           text NOT NULL,                      -- far | near | active | completed | cancelled | none
    action               text NOT NULL CHECK (action IN ('new', 'modified', 'cancelled')),
    opt                  text NOT NULL CHECK (opt IN ('optIn', 'optOut')),
    opt_reason           text,
    signal_name          text NOT NULL,
    signal_kind          text NOT NULL,                      -- simple | target_kw | setpoint_kw | price
    direction            text NOT NULL CHECK (direction IN ('up', 'down')),
    requested_kw         double precision NOT NULL CHECK (requested_kw >= 0),
    committed_kw         double precision NOT NULL CHECK (committed_kw >= 0),
    start_at             timestamptz,
    end_at               timestamptz,
    program_id           text,
    intervals            jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [{start, duration_s, value, unit}] of this version
    report_request       jsonb,                               -- {interval_s, kinds} or null
    first_received_at    timestamptz NOT NULL,                -- notification: the baseline is fixed here
    received_at          timestamptz NOT NULL,                -- of the version in force
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, vtn_id, vtn_event_id)
);
CREATE INDEX vpp_events_park_start_idx ON vpp_events (park_id, start_at DESC);

-- Every version of every event exactly as received (raw payload), with what the intake did with it.
CREATE TABLE vpp_event_versions (
    version_id           bigserial PRIMARY KEY,
    source               text NOT NULL,
    vtn_id               text NOT NULL,
    vtn_event_id         text NOT NULL,
    modification_number  integer NOT NULL,
    received_at          timestamptz NOT NULL,
    action               text NOT NULL CHECK (action IN ('new', 'modified', 'cancelled', 'duplicate', 'stale')),
    opt                  text CHECK (opt IN ('optIn', 'optOut')),
    opt_reason           text,
    raw                  jsonb NOT NULL,
    stored_at            timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (source, vtn_id, vtn_event_id) REFERENCES vpp_events (source, vtn_id, vtn_event_id) ON DELETE CASCADE
);
CREATE INDEX vpp_event_versions_event_idx ON vpp_event_versions (source, vtn_id, vtn_event_id, version_id);

-- A park's intake policy (vpp IntakePolicy as JSON); parks without a row use the built-in defaults.
CREATE TABLE vpp_intake_policies (
    park_id      text PRIMARY KEY REFERENCES parks (park_id) ON DELETE CASCADE,
    policy       jsonb NOT NULL CHECK (jsonb_typeof(policy) = 'object'),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
