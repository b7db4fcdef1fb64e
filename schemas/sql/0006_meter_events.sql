-- ParkPulse meter events, version 6: meter replacements, CT/PT ratio changes and operator-confirmed resets.
-- Runs on TimescaleDB 2.x and plain PostgreSQL >= 14.
--
-- An event tells aggregation what a register drop or a change of scale really was, so the energy across it
-- is computed exactly instead of estimated (aggregation/_meter_events.py). Events are an audit trail: a
-- recorded event is never edited or deleted by the application. Correcting one voids it (who, when, why)
-- and records a new one that names it in ``corrects``; a trigger refuses any other change. Recording or
-- voiding an event writes a ``reading_changes`` row for the series and time range it affects, so the next
-- aggregation run recomputes those intervals, rollups and indicators exactly as it does for late data.

CREATE TABLE meter_events (
    event_id         bigserial PRIMARY KEY,
    park_id          text NOT NULL,
    device_id        text NOT NULL,
    metric           text NOT NULL,                -- the register concerned (a cumulative metric of the device)
    kind             text NOT NULL CHECK (kind IN ('replacement', 'ratio_change', 'reset')),
    occurred_at      timestamptz NOT NULL,         -- readings at or before it belong to the old meter / ratio
    -- registers in the metric's canonical unit (kWh, m3, GJ), as the device transports them
    old_final        double precision CHECK (old_final IS NULL OR old_final >= 0),     -- old register at the event
    new_initial      double precision CHECK (new_initial IS NULL OR new_initial >= 0), -- new register at the event
    -- CT x PT multipliers before and after a ratio change, and the ratios as the operator entered them
    old_multiplier   double precision CHECK (old_multiplier IS NULL OR old_multiplier > 0),
    new_multiplier   double precision CHECK (new_multiplier IS NULL OR new_multiplier > 0),
    old_ratio        text,
    new_ratio        text,
    note             text,
    recorded_by      text NOT NULL CHECK (recorded_by <> ''),
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    source           text NOT NULL CHECK (source IN ('cli', 'api', 'import')),
    corrects         bigint REFERENCES meter_events (event_id),  -- the voided event this one replaces
    voided_at        timestamptz,
    voided_by        text,
    void_reason      text,
    FOREIGN KEY (park_id, device_id) REFERENCES devices (park_id, device_id) ON DELETE CASCADE,
    CHECK (kind <> 'replacement' OR (old_final IS NOT NULL AND new_initial IS NOT NULL)),
    CHECK (kind <> 'reset' OR new_initial IS NOT NULL),
    CHECK (kind <> 'ratio_change' OR (old_multiplier IS NOT NULL AND new_multiplier IS NOT NULL
                                      AND old_multiplier <> new_multiplier)),
    CHECK (kind = 'ratio_change' OR (old_multiplier IS NULL AND new_multiplier IS NULL)),
    CHECK ((voided_at IS NULL AND voided_by IS NULL AND void_reason IS NULL)
           OR (voided_at IS NOT NULL AND voided_by IS NOT NULL AND void_reason IS NOT NULL AND void_reason <> ''))
);
-- One live event per register and instant; voided ones stay for the audit trail.
CREATE UNIQUE INDEX meter_events_live_key ON meter_events (park_id, device_id, metric, occurred_at)
    WHERE voided_at IS NULL;
CREATE INDEX meter_events_park_idx ON meter_events (park_id, occurred_at);

-- Events are immutable: the only change allowed is voiding a live event once (the three void columns).
CREATE FUNCTION meter_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.voided_at IS NOT NULL THEN
        RAISE EXCEPTION 'meter event % is already void; record a new event instead', OLD.event_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF (NEW.event_id, NEW.park_id, NEW.device_id, NEW.metric, NEW.kind, NEW.occurred_at, NEW.old_final,
        NEW.new_initial, NEW.old_multiplier, NEW.new_multiplier, NEW.old_ratio, NEW.new_ratio, NEW.note,
        NEW.recorded_by, NEW.recorded_at, NEW.source, NEW.corrects)
       IS DISTINCT FROM
       (OLD.event_id, OLD.park_id, OLD.device_id, OLD.metric, OLD.kind, OLD.occurred_at, OLD.old_final,
        OLD.new_initial, OLD.old_multiplier, OLD.new_multiplier, OLD.old_ratio, OLD.new_ratio, OLD.note,
        OLD.recorded_by, OLD.recorded_at, OLD.source, OLD.corrects) THEN
        RAISE EXCEPTION 'meter event % cannot be edited; void it and record a corrected one', OLD.event_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER meter_events_immutable BEFORE UPDATE ON meter_events
    FOR EACH ROW EXECUTE FUNCTION meter_events_immutable();
