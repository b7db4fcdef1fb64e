-- ParkPulse aggregation schema, version 2: interval energy, rollups, declared inputs, indicator results.
-- Written by the aggregation jobs (package aggregation/); runs on TimescaleDB 2.x and plain PostgreSQL >= 14.
-- Every result table is upserted on its primary key, so re-running a job is idempotent.

-- Interval energy per meter (series) on the fixed grid (15 min by default), from cumulative registers.
-- ts = interval start (UTC); energy in the metric's canonical unit (kWh, m3, GJ) x the device multiplier.
-- quality = schemas.Quality (0 actual, 1 estimated, 2 suspect); flags = aggregation.IntervalFlag bits.
CREATE TABLE interval_energy (
    series_id         integer NOT NULL,
    ts                timestamptz NOT NULL,
    energy            double precision NOT NULL CHECK (energy >= 0),
    quality           smallint NOT NULL,
    estimated_share   real NOT NULL CHECK (estimated_share BETWEEN 0 AND 1),
    flags             integer NOT NULL DEFAULT 0,
    coverage          real NOT NULL DEFAULT 1 CHECK (coverage BETWEEN 0 AND 1),
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (series_id, ts)
);

-- Per-meter rollups in the park's calendar: local hour, day and month, stored by their UTC start.
CREATE TABLE meter_rollups (
    series_id         integer NOT NULL,
    grain             text NOT NULL CHECK (grain IN ('hour', 'day', 'month')),
    period_start      timestamptz NOT NULL,
    energy            double precision NOT NULL,
    estimated_energy  double precision NOT NULL,     -- part of energy that was estimated (VEE)
    n_intervals       integer NOT NULL,              -- intervals present
    n_estimated       double precision NOT NULL,     -- sum of interval estimated shares
    n_expected        integer NOT NULL,              -- intervals the local period has (completeness)
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (series_id, grain, period_start)
);
CREATE INDEX meter_rollups_period_idx ON meter_rollups (grain, period_start);

-- Group rollups: dimension 'park' (member ''), 'site' (site id) or 'level' ('1', '2', '3'), by carrier and metric.
CREATE TABLE group_rollups (
    park_id           text NOT NULL,
    grain             text NOT NULL CHECK (grain IN ('hour', 'day', 'month')),
    period_start      timestamptz NOT NULL,
    dimension         text NOT NULL CHECK (dimension IN ('park', 'site', 'level')),
    member            text NOT NULL,
    carrier           text NOT NULL,
    metric            text NOT NULL,
    energy            double precision NOT NULL,
    estimated_energy  double precision NOT NULL,
    n_meters          integer NOT NULL,
    n_intervals       integer NOT NULL,
    n_expected        integer NOT NULL,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (park_id, grain, period_start, dimension, member, carrier, metric)
);

-- GB 17167 balance: level-1 energy vs the sum of level-2 meters, difference reported (losses, unmetered load).
CREATE TABLE balance_checks (
    park_id           text NOT NULL,
    grain             text NOT NULL,
    period_start      timestamptz NOT NULL,
    carrier           text NOT NULL,
    metric            text NOT NULL,
    level1_energy     double precision NOT NULL,
    level2_energy     double precision NOT NULL,
    difference        double precision NOT NULL,
    difference_pct    double precision,
    alarm             boolean NOT NULL,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (park_id, grain, period_start, carrier, metric)
);

-- Non-metered inputs (parkpulse import ...): flows over [period_start, period_end), stocks (areas) valid
-- from period_start (period_end NULL). Every row names its source; replaced values go to the history.
CREATE TABLE declared_inputs (
    declared_id       bigserial PRIMARY KEY,
    park_id           text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    kind              text NOT NULL,
    subject           text NOT NULL DEFAULT '',
    period_start      date NOT NULL,
    period_end        date,
    quantity          double precision NOT NULL,
    unit              text NOT NULL,
    source            text NOT NULL CHECK (source <> ''),
    note              text,
    import_file       text,
    imported_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (period_end IS NULL OR period_end > period_start)
);
CREATE UNIQUE INDEX declared_inputs_key ON declared_inputs
    (park_id, kind, subject, period_start, COALESCE(period_end, DATE '9999-12-31'));

CREATE TABLE declared_inputs_history (
    declared_id       bigint NOT NULL,
    park_id           text NOT NULL,
    kind              text NOT NULL,
    subject           text NOT NULL,
    period_start      date NOT NULL,
    period_end        date,
    quantity          double precision NOT NULL,
    unit              text NOT NULL,
    source            text NOT NULL,
    note              text,
    import_file       text,
    imported_at       timestamptz NOT NULL,
    superseded_at     timestamptz NOT NULL DEFAULT now()
);

-- Published park indicators. One row per (park, period, subject, indicator, variant); a changed value
-- (late data, new import) moves the old row to the history and bumps the revision.
CREATE TABLE indicator_results (
    park_id           text NOT NULL,
    period            text NOT NULL,              -- 2026-10, 2026-Q4, 2026, 2026-10-YTD
    subject           text NOT NULL DEFAULT '',   -- '' = the park; a site id for per-site values (PUE)
    indicator         text NOT NULL,
    variant           text NOT NULL,
    period_start      date NOT NULL,
    period_end        date NOT NULL,
    value             double precision,
    unit              text NOT NULL,
    numerator         double precision,
    denominator       double precision,
    estimated_share   real,
    completeness      real,
    status            text NOT NULL,
    headline          boolean NOT NULL DEFAULT true,
    factor_vintages   jsonb NOT NULL DEFAULT '{}'::jsonb,
    notes             jsonb NOT NULL DEFAULT '[]'::jsonb,
    revision          integer NOT NULL DEFAULT 1,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (park_id, period, subject, indicator, variant)
);

CREATE TABLE indicator_results_history (
    park_id           text NOT NULL,
    period            text NOT NULL,
    subject           text NOT NULL,
    indicator         text NOT NULL,
    variant           text NOT NULL,
    value             double precision,
    estimated_share   real,
    factor_vintages   jsonb NOT NULL,
    revision          integer NOT NULL,
    computed_at       timestamptz NOT NULL,
    superseded_at     timestamptz NOT NULL DEFAULT now()
);

-- PUE (ISO/IEC 30134-2, energy-based) per data-centre site: daily and monthly interim PUE, rolling 12 months.
CREATE TABLE pue_results (
    park_id           text NOT NULL,
    site_id           text NOT NULL,
    grain             text NOT NULL CHECK (grain IN ('day', 'month', 'rolling_12m')),
    period_start      timestamptz NOT NULL,        -- for rolling_12m: start of the window's last month
    facility_kwh      double precision NOT NULL,
    it_kwh            double precision NOT NULL,
    pue               double precision,
    estimated_share   real,
    months            integer NOT NULL DEFAULT 1,
    category          text NOT NULL,               -- measurement category of the IT meters (1/2/3/unknown)
    plausible         boolean NOT NULL,
    grade             smallint,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (park_id, site_id, grain, period_start)
);

-- Job state: the change-log position, the change ids skipped while their transactions may still commit
-- (sequence gaps), and the parameters results were computed with.
CREATE TABLE aggregation_watermarks (
    job               text PRIMARY KEY,
    last_change_id    bigint NOT NULL DEFAULT 0,
    params            jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE aggregation_pending_changes (
    job               text NOT NULL,
    change_id         bigint NOT NULL,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, change_id)
);

CREATE TABLE aggregation_runs (
    run_id            bigserial PRIMARY KEY,
    job               text NOT NULL,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    status            text NOT NULL,               -- running | ok | failed
    n_changes         integer NOT NULL DEFAULT 0,
    n_series          integer NOT NULL DEFAULT 0,
    n_intervals       integer NOT NULL DEFAULT 0,
    n_rollups         integer NOT NULL DEFAULT 0,
    n_indicators      integer NOT NULL DEFAULT 0,
    estimated_share   real,
    detail            text
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('interval_energy', by_range('ts', INTERVAL '30 days'));
    END IF;
END
$$;
