-- ParkPulse demand response, version 3: flexible assets, DR events and their M&V results, capacity history,
-- and utility API keys. Written by flex/ (DrStore) and api/; runs on TimescaleDB 2.x and plain PostgreSQL >= 14.
-- Park demand itself is read from interval_energy (0002): level-1 electricity meters, kW = kWh / 0.25 h.

-- Per-park DR settings: grid connection limits at the park boundary and the programme's baseline choice.
CREATE TABLE dr_park_settings (
    park_id              text PRIMARY KEY REFERENCES parks (park_id) ON DELETE CASCADE,
    import_max_kw        double precision CHECK (import_max_kw IS NULL OR import_max_kw >= 0),
    export_max_kw        double precision CHECK (export_max_kw IS NULL OR export_max_kw >= 0),
    baseline_method      text NOT NULL DEFAULT 'JIANGSU_5WD',     -- flex preset name
    baseline_overrides   jsonb NOT NULL DEFAULT '{}'::jsonb,      -- flex.resolve_method overrides
    declared_duration_h  double precision CHECK (declared_duration_h IS NULL OR (declared_duration_h > 0 AND declared_duration_h <= 24)),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Connection limits of individual sites (transformer or feeder capacity) inside a park.
CREATE TABLE dr_site_limits (
    park_id         text NOT NULL,
    site_id         text NOT NULL,
    import_max_kw   double precision CHECK (import_max_kw IS NULL OR import_max_kw >= 0),
    export_max_kw   double precision CHECK (export_max_kw IS NULL OR export_max_kw >= 0),
    PRIMARY KEY (park_id, site_id),
    FOREIGN KEY (park_id, site_id) REFERENCES sites (park_id, site_id) ON DELETE CASCADE
);

-- Flexible assets: parameters as the flex.<Kind> JSON model; live state read from the linked device's
-- latest readings (device_id) or, failing that, from the last stored state snapshot.
CREATE TABLE flex_assets (
    park_id       text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    asset_id      text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('battery', 'ev_charger', 'hvac', 'process', 'pv')),
    site_id       text,
    device_id     text,                                  -- devices.device_id of the same park, optional
    params        jsonb NOT NULL,                        -- asset model without its live state
    state         jsonb,                                 -- last state snapshot (used when no fresh readings)
    state_at      timestamptz,
    options       jsonb NOT NULL DEFAULT '{}'::jsonb,    -- adapter options, e.g. {"ev_dwell_h": 8}
    enabled       boolean NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (park_id, asset_id)
);

-- DR events registered for a park (from a utility, an OpenADR VTN, or by hand).
CREATE TABLE dr_events (
    event_id            text PRIMARY KEY CHECK (event_id ~ '^[A-Za-z0-9_-]{1,128}$'),
    park_id             text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    start_at            timestamptz NOT NULL,
    end_at              timestamptz NOT NULL,
    direction           text NOT NULL CHECK (direction IN ('up', 'down')),   -- up = load reduction (削峰)
    requested_kw        double precision NOT NULL CHECK (requested_kw > 0),
    declared_kw         double precision CHECK (declared_kw IS NULL OR declared_kw >= 0),
    baseline_method     text NOT NULL,
    baseline_overrides  jsonb NOT NULL DEFAULT '{}'::jsonb,
    notified_at         timestamptz,
    source              text NOT NULL DEFAULT 'manual',      -- manual | openadr | simulation | api
    program_id          text,
    status              text NOT NULL DEFAULT 'registered' CHECK (status IN ('registered', 'evaluated', 'cancelled')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (end_at > start_at)
);
CREATE INDEX dr_events_park_start_idx ON dr_events (park_id, start_at);

-- Measurement and verification of an event (flex.evaluate_event); replaced on re-evaluation.
CREATE TABLE dr_event_results (
    event_id                  text PRIMARY KEY REFERENCES dr_events (event_id) ON DELETE CASCADE,
    evaluated_at              timestamptz NOT NULL DEFAULT now(),
    baseline_method           text NOT NULL,
    baseline_params           jsonb NOT NULL,          -- the full resolved method, for reproducibility
    delivered_kwh             double precision NOT NULL,
    duration_h                double precision NOT NULL,
    avg_reduction_kw          double precision NOT NULL,
    min_reduction_kw          double precision,
    max_reduction_kw          double precision,
    ratio_requested           double precision NOT NULL,
    ratio_declared            double precision,
    band                      text,
    estimated_share_event     double precision NOT NULL,
    estimated_share_baseline  double precision NOT NULL,
    missing_intervals         integer NOT NULL,
    quality_ok                boolean NOT NULL,
    quality_reasons           text[] NOT NULL DEFAULT '{}',
    baseline_days             date[] NOT NULL DEFAULT '{}',
    adjustment                jsonb NOT NULL DEFAULT '{}'::jsonb,
    warnings                  text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE dr_event_intervals (
    event_id                text NOT NULL REFERENCES dr_events (event_id) ON DELETE CASCADE,
    ts                      timestamptz NOT NULL,
    baseline_kw             double precision NOT NULL,
    baseline_unadjusted_kw  double precision NOT NULL,
    actual_kw               double precision,
    reduction_kw            double precision,
    estimated_share         double precision,
    PRIMARY KEY (event_id, ts)
);

-- Every capacity computation is kept: declared and verified side by side, as % of annual max demand.
CREATE TABLE dr_capacity_history (
    park_id                text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    computed_at            timestamptz NOT NULL,
    direction              text NOT NULL CHECK (direction IN ('up', 'down')),
    duration_h             double precision NOT NULL,
    declared_kw            double precision,
    verified_kw            double precision,
    verified_event_id      text,
    n_events               integer NOT NULL,
    derating_factor        double precision NOT NULL,
    annual_max_demand_kw   double precision,
    annual_max_demand_at   timestamptz,
    declared_pct           double precision,
    verified_pct           double precision,
    PRIMARY KEY (park_id, computed_at, direction, duration_h)
);

-- Utility API clients: a key is shown once at creation; only its salted scrypt hash is stored.
CREATE TABLE api_clients (
    client_id      text PRIMARY KEY CHECK (client_id ~ '^[a-z0-9]{8,32}$'),   -- public part of the key
    name           text NOT NULL,                                            -- the utility / aggregator
    key_hash       bytea NOT NULL,
    key_salt       bytea NOT NULL,
    kdf            text NOT NULL,                                            -- e.g. scrypt:n=16384,r=8,p=1
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz,
    revoked_at     timestamptz,
    last_used_at   timestamptz
);

CREATE TABLE api_client_parks (
    client_id   text NOT NULL REFERENCES api_clients (client_id) ON DELETE CASCADE,
    park_id     text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    PRIMARY KEY (client_id, park_id)
);
