-- Targets as data, and the 预警 (early-warning) levels of their projections (package alarms/: _targets_store,
-- _warning_store). Versioned: a changed target is a new row; the older rows end where it starts (valid_to)
-- or, when it starts on or before them, are superseded (kept, applied nowhere). Dates are park-local days.

-- One version of one target. The key is (park, subject, indicator, variant, year, month); month 0 is the
-- annual target. Units are the indicator's (tce, tCO2, tce/10^4 CNY, tCO2/10^4 CNY, %, 1 for PUE).
CREATE TABLE targets (
    target_id      bigserial PRIMARY KEY,
    park_id        text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    subject_kind   text NOT NULL DEFAULT 'park' CHECK (subject_kind IN ('park', 'site', 'enterprise')),
    subject        text NOT NULL DEFAULT '',      -- '' for the park, else the site id or enterprise name
    indicator      text NOT NULL CHECK (indicator IN ('total_energy', 'total_co2', 'energy_intensity_va',
                                                      'co2_intensity_va', 'nonfossil_share', 'renewable_share',
                                                      'pue')),
    variant        text NOT NULL,                 -- calorific | coal_equivalent, location | market, electricity | energy, annual
    year           integer NOT NULL CHECK (year BETWEEN 1970 AND 2200),
    month          smallint NOT NULL DEFAULT 0 CHECK (month BETWEEN 0 AND 12),
    value          double precision NOT NULL CHECK (value >= 0 AND value < 'Infinity'::float8),
    unit           text NOT NULL,
    direction      text NOT NULL CHECK (direction IN ('cap', 'floor')),   -- stay under (cap) or reach (floor)
    source         text NOT NULL CHECK (source <> ''),                    -- the plan, allocation or goal, named
    source_kind    text NOT NULL CHECK (source_kind IN ('seed_plan', 'provincial_allocation', 'company_goal',
                                                        'other')),
    note           text,
    valid_from     date NOT NULL,                 -- first local day this version is the target
    valid_to       date,                          -- local day the next version took over (exclusive); NULL = open
    superseded_at  timestamptz,                   -- set when a later-recorded version replaced it entirely
    replaced_by    bigint REFERENCES targets (target_id),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    recorded_by    text,                          -- cli, api:<key name>, import:<file>
    CHECK (valid_to IS NULL OR valid_to > valid_from),
    CHECK ((subject_kind = 'park') = (subject = ''))
);
-- At most one live version of a key starts on a given day (live versions never overlap: _targets.plan_version).
CREATE UNIQUE INDEX targets_live_key ON targets (park_id, subject_kind, subject, indicator, variant, year, month,
                                                 valid_from) WHERE superseded_at IS NULL;
CREATE INDEX targets_park_year ON targets (park_id, year);

-- The current 预警 level of each target key, with the hysteresis state and the last evaluation's figures
-- (what the dashboard panel shows). pending_* count consecutive daily evaluations across a threshold.
CREATE TABLE target_warning_states (
    park_id          text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    subject_kind     text NOT NULL,
    subject          text NOT NULL,
    indicator        text NOT NULL,
    variant          text NOT NULL,
    year             integer NOT NULL,
    month            smallint NOT NULL,
    level            text NOT NULL CHECK (level IN ('green', 'yellow', 'red')),
    level_since      timestamptz NOT NULL,
    pending_level    text CHECK (pending_level IN ('green', 'yellow', 'red')),
    pending_count    integer NOT NULL DEFAULT 0 CHECK (pending_count >= 0),
    last_eval_day    date NOT NULL,               -- park-local day of the last evaluation
    target_id        bigint REFERENCES targets (target_id) ON DELETE SET NULL,
    target_value     double precision NOT NULL,
    unit             text NOT NULL,
    direction        text NOT NULL CHECK (direction IN ('cap', 'floor')),
    projected_value  double precision NOT NULL,
    band_low         double precision,
    band_high        double precision,
    ratio            double precision NOT NULL,   -- projected / target ('Infinity' for a cap of 0 exceeded)
    method           text NOT NULL,
    backtest_mape    double precision,            -- fraction, e.g. 0.043 = 4.3 %
    backtest_bias    double precision,
    backtest_n       integer NOT NULL DEFAULT 0,
    evaluated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (park_id, subject_kind, subject, indicator, variant, year, month)
);

-- Every level change (the first evaluation of a key included, from_level NULL), with what caused it.
CREATE TABLE target_warning_changes (
    change_id        bigserial PRIMARY KEY,
    park_id          text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    subject_kind     text NOT NULL,
    subject          text NOT NULL,
    indicator        text NOT NULL,
    variant          text NOT NULL,
    year             integer NOT NULL,
    month            smallint NOT NULL,
    from_level       text CHECK (from_level IN ('green', 'yellow', 'red')),
    to_level         text NOT NULL CHECK (to_level IN ('green', 'yellow', 'red')),
    reason           text NOT NULL CHECK (reason IN ('first', 'margin', 'persistence')),
    ratio            double precision NOT NULL,
    projected_value  double precision NOT NULL,
    target_value     double precision NOT NULL,
    target_id        bigint REFERENCES targets (target_id) ON DELETE SET NULL,
    notification_key text,                        -- dedupe key of the notification enqueued with it, if any
    changed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX target_warning_changes_park ON target_warning_changes (park_id, changed_at DESC);
