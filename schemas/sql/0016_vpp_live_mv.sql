-- Live M&V of VPP events (issue 16): the baseline fixed at notification and the per-interval delivery.
-- One row per DR event in vpp_mv_events: the baseline's provenance (method, days, adjustment) as it was
-- computed from the data known at notification, the commitment, the live/final status and, once the
-- event is over, the final figures. vpp_mv_intervals holds the fixed baseline of every interval with the
-- plan, the metered demand and the delivered reduction, updated every interval while the event runs.

CREATE TABLE vpp_mv_events (
    event_id           text PRIMARY KEY REFERENCES dr_events (event_id) ON DELETE CASCADE,
    park_id            text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    fixed_at           timestamptz NOT NULL,                 -- notification time: no data after it was used
    computed_at        timestamptz NOT NULL DEFAULT now(),
    start_at           timestamptz NOT NULL,
    end_at             timestamptz NOT NULL CHECK (end_at > start_at),
    direction          text NOT NULL CHECK (direction IN ('up', 'down')),
    committed_kw       double precision NOT NULL CHECK (committed_kw >= 0),
    requested_kw       double precision NOT NULL CHECK (requested_kw >= 0),
    interval_minutes   smallint NOT NULL CHECK (interval_minutes BETWEEN 1 AND 60),
    baseline_method    text NOT NULL,
    baseline_params    jsonb NOT NULL,
    event_day          date NOT NULL,
    event_day_type     text NOT NULL,
    reference_day      date NOT NULL,
    baseline_days      date[] NOT NULL DEFAULT '{}',
    adjustment         jsonb NOT NULL DEFAULT '{}'::jsonb,
    estimated_share    double precision NOT NULL DEFAULT 0,
    warnings           text[] NOT NULL DEFAULT '{}',
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled', 'final')),
    as_of              timestamptz,                          -- last live update
    delivered_kwh      double precision,
    forecast_kwh       double precision,
    avg_reduction_kw   double precision,
    missing_intervals  integer,
    quality_ok         boolean,
    quality_reasons    text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX vpp_mv_events_park_idx ON vpp_mv_events (park_id, start_at DESC);
CREATE INDEX vpp_mv_events_active_idx ON vpp_mv_events (status) WHERE status = 'active';

CREATE TABLE vpp_mv_intervals (
    event_id                text NOT NULL REFERENCES vpp_mv_events (event_id) ON DELETE CASCADE,
    ts                      timestamptz NOT NULL,
    baseline_kw             double precision NOT NULL,
    baseline_unadjusted_kw  double precision NOT NULL,
    planned_kw              double precision,
    metered_kw              double precision,
    reduction_kw            double precision,
    complete                boolean NOT NULL DEFAULT false,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, ts)
);
