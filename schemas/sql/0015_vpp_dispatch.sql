-- ParkPulse VPP dispatch, version 15: dispatch plans, every command sent to a device and everything that
-- happened to it (audit), and operators' overrides. Written by vpp/ (vpp/_dispatch_store.py); runs on
-- TimescaleDB 2.x and plain PostgreSQL >= 14.
--
-- The audit trail is immutable: vpp_commands rows (what was sent) and vpp_command_log rows (sent, resent,
-- acknowledged, expired, suppressed) are only ever inserted; a trigger refuses UPDATE and DELETE. An
-- override is never edited either; it is cleared once (who, when), like a voided meter event (0006).
-- event_id is the flex DR event id (dr_events) without a foreign key: the audit outlives the event row.

-- One row per plan made for an event version: what the park commits to and how it intends to deliver it.
CREATE TABLE vpp_plans (
    plan_id             bigserial PRIMARY KEY,
    park_id             text NOT NULL,
    event_id            text NOT NULL,
    planned_at          timestamptz NOT NULL,
    method              text NOT NULL CHECK (method IN ('lp', 'greedy')),
    direction           text NOT NULL CHECK (direction IN ('up', 'down')),
    target_kw           double precision NOT NULL,            -- largest interval target
    committed_kw        double precision NOT NULL,            -- response the plan holds in every interval
    shortfall_kwh       double precision NOT NULL,
    intervals           jsonb NOT NULL,                       -- [{start, end, target_kw, response_kw}]
    schedules           jsonb NOT NULL,                       -- [{asset_id, device_id, kind, power_kw[], ...}]
    warnings            text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX vpp_plans_event_idx ON vpp_plans (event_id, planned_at DESC);
CREATE INDEX vpp_plans_park_idx ON vpp_plans (park_id, planned_at DESC);

CREATE TABLE vpp_commands (
    command_id      text PRIMARY KEY,
    park_id         text NOT NULL,
    device_id       text NOT NULL,
    asset_id        text,
    event_id        text,
    plan_id         bigint REFERENCES vpp_plans (plan_id),
    action          text NOT NULL CHECK (action IN ('set_active_power', 'set_power_limit',
                                                    'set_temperature_setpoint', 'release')),
    value           double precision NOT NULL,
    unit            text NOT NULL,
    interval_start  timestamptz,
    issued_at       timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    hold_until      timestamptz,
    issued_by       text NOT NULL,
    reason          text NOT NULL DEFAULT '',
    payload         jsonb NOT NULL,                          -- the message exactly as published
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vpp_commands_park_idx ON vpp_commands (park_id, issued_at DESC);
CREATE INDEX vpp_commands_event_idx ON vpp_commands (event_id, issued_at);

CREATE TABLE vpp_command_log (
    log_id          bigserial PRIMARY KEY,
    command_id      text NOT NULL REFERENCES vpp_commands (command_id),
    kind            text NOT NULL CHECK (kind IN ('sent', 'resent', 'applied', 'rejected', 'expired',
                                                  'suppressed', 'cancelled')),
    at              timestamptz NOT NULL,
    reason          text,                                    -- reject code, or why suppressed
    detail          text NOT NULL DEFAULT '',
    applied_value   double precision,
    payload         jsonb                                    -- the acknowledgement as received
);
CREATE INDEX vpp_command_log_command_idx ON vpp_command_log (command_id, log_id);

CREATE FUNCTION vpp_audit_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are an audit trail and cannot be changed or deleted', TG_TABLE_NAME
        USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER vpp_commands_immutable BEFORE UPDATE OR DELETE ON vpp_commands
    FOR EACH ROW EXECUTE FUNCTION vpp_audit_immutable();
CREATE TRIGGER vpp_command_log_immutable BEFORE UPDATE OR DELETE ON vpp_command_log
    FOR EACH ROW EXECUTE FUNCTION vpp_audit_immutable();
CREATE TRIGGER vpp_plans_immutable BEFORE UPDATE OR DELETE ON vpp_plans
    FOR EACH ROW EXECUTE FUNCTION vpp_audit_immutable();

-- Operator overrides: exclude a device from dispatch (max_change_kw = 0) or cap how far it may be moved
-- from its baseline, until valid_until. The planner honours every live override; it always wins.
CREATE TABLE vpp_overrides (
    override_id     bigserial PRIMARY KEY,
    park_id         text NOT NULL,
    device_id       text NOT NULL,
    max_change_kw   double precision NOT NULL CHECK (max_change_kw >= 0),
    valid_until     timestamptz NOT NULL,
    reason          text NOT NULL CHECK (reason <> ''),
    created_by      text NOT NULL CHECK (created_by <> ''),
    created_at      timestamptz NOT NULL DEFAULT now(),
    cleared_at      timestamptz,
    cleared_by      text,
    CHECK (valid_until > created_at),
    CHECK ((cleared_at IS NULL) = (cleared_by IS NULL))
);
CREATE INDEX vpp_overrides_park_idx ON vpp_overrides (park_id, device_id, valid_until DESC);

-- Overrides are cleared once and never otherwise edited or deleted.
CREATE FUNCTION vpp_overrides_clear_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.cleared_at IS NOT NULL
       OR (NEW.override_id, NEW.park_id, NEW.device_id, NEW.max_change_kw, NEW.valid_until, NEW.reason,
           NEW.created_by, NEW.created_at)
          IS DISTINCT FROM
          (OLD.override_id, OLD.park_id, OLD.device_id, OLD.max_change_kw, OLD.valid_until, OLD.reason,
           OLD.created_by, OLD.created_at) THEN
        RAISE EXCEPTION 'override % can only be cleared, once', OLD.override_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER vpp_overrides_clear_only BEFORE UPDATE OR DELETE ON vpp_overrides
    FOR EACH ROW EXECUTE FUNCTION vpp_overrides_clear_only();
