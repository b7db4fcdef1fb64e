-- ParkPulse operational alarms, version 11 (issue 15, items 4–5): rule overrides per park, the alarms with
-- their lifecycle, the full history of transitions, pending conditions and the evaluation watermark.
-- Runs on TimescaleDB 2.x and plain PostgreSQL >= 14. Written by alarms/_lifecycle_store.py and
-- alarms/_evaluate.py (`parkpulse alarms evaluate`, the hook after `parkpulse aggregate`).
--
-- Lifecycle: open (raised) → acknowledged (who, when, comment) → cleared (by the evaluator when the condition
-- is gone, or because the rule was disabled). At most one alarm per (park, rule, subject) is not cleared; a
-- condition that returns within the rule's reopen_within_min re-opens the cleared alarm instead of raising
-- a new one (flap suppression). Every change is a row of alarm_transitions, which is never updated.

-- Per-park overrides of the rules file (`parkpulse alarms rules --park P --set RULE.FIELD=VALUE`); NULL keeps
-- the file's value, ``params`` is merged over the file's parameters.
CREATE TABLE alarm_rule_overrides (
    park_id            text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    rule_id            text NOT NULL CHECK (rule_id ~ '^[a-z][a-z0-9_]{0,63}$'),
    override           jsonb NOT NULL CHECK (jsonb_typeof(override) = 'object'),
    updated_by         text NOT NULL CHECK (updated_by <> ''),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (park_id, rule_id)
);

CREATE TABLE alarms (
    alarm_id           bigserial PRIMARY KEY,
    park_id            text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    rule_id            text NOT NULL,
    kind               text NOT NULL,                 -- the rule's kind (device_offline, pue_limit …)
    subject            text NOT NULL,                 -- device, device/metric, carrier, site or 'park'
    severity           text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state              text NOT NULL CHECK (state IN ('open', 'acknowledged', 'cleared')),
    title_zh           text NOT NULL,
    title_en           text NOT NULL,
    message_zh         text NOT NULL,                 -- the newest evaluation's message
    message_en         text NOT NULL,
    value              double precision,              -- measured, in unit (worst of the window)
    limit_value        double precision,              -- the rule's limit, in unit
    unit               text NOT NULL,
    context            jsonb NOT NULL DEFAULT '{}'::jsonb,
    raised_at          timestamptz NOT NULL,          -- first raised
    last_raised_at     timestamptz NOT NULL,          -- raised or last re-opened
    last_true_at       timestamptz NOT NULL,          -- the newest evaluation in which the condition held
    acknowledged_at    timestamptz,
    acknowledged_by    text,
    ack_comment        text,
    cleared_at         timestamptz,
    clear_reason       text,
    reopen_count       integer NOT NULL DEFAULT 0 CHECK (reopen_count >= 0),
    CHECK ((state = 'cleared') = (cleared_at IS NOT NULL)),
    CHECK (state <> 'acknowledged' OR (acknowledged_at IS NOT NULL AND acknowledged_by IS NOT NULL))
);
-- De-duplication: one alarm per rule and subject that is not cleared.
CREATE UNIQUE INDEX alarms_one_live ON alarms (park_id, rule_id, subject) WHERE state <> 'cleared';
CREATE INDEX alarms_park_idx ON alarms (park_id, last_raised_at DESC);
CREATE INDEX alarms_cleared_idx ON alarms (park_id, rule_id, subject, cleared_at DESC) WHERE state = 'cleared';

-- The full history: raised, reopened, acknowledged, cleared, severity changed. Append-only.
CREATE TABLE alarm_transitions (
    transition_id      bigserial PRIMARY KEY,
    alarm_id           bigint NOT NULL REFERENCES alarms (alarm_id) ON DELETE CASCADE,
    at                 timestamptz NOT NULL,
    action             text NOT NULL CHECK (action IN ('raised', 'reopened', 'acknowledged', 'cleared', 'severity')),
    from_state         text CHECK (from_state IN ('open', 'acknowledged', 'cleared')),
    to_state           text NOT NULL CHECK (to_state IN ('open', 'acknowledged', 'cleared')),
    severity           text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    actor              text NOT NULL CHECK (actor <> ''),   -- 'evaluator' or the person who acknowledged
    comment            text,
    value              double precision,
    message_en         text
);
CREATE INDEX alarm_transitions_alarm_idx ON alarm_transitions (alarm_id, transition_id);

CREATE FUNCTION alarm_transitions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'alarm transition % is history and cannot be edited', OLD.transition_id
        USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER alarm_transitions_append_only BEFORE UPDATE ON alarm_transitions
    FOR EACH ROW EXECUTE FUNCTION alarm_transitions_append_only();

-- Conditions that hold but have not yet held for the rule's raise_after consecutive evaluations.
CREATE TABLE alarm_pending (
    park_id            text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    rule_id            text NOT NULL,
    subject            text NOT NULL,
    hits               integer NOT NULL CHECK (hits >= 1),
    first_at           timestamptz NOT NULL,
    last_at            timestamptz NOT NULL,
    PRIMARY KEY (park_id, rule_id, subject)
);

-- Per park: when it was last evaluated, for which instant, and the rules that were skipped and why.
CREATE TABLE alarm_evaluations (
    park_id            text PRIMARY KEY REFERENCES parks (park_id) ON DELETE CASCADE,
    evaluated_at       timestamptz NOT NULL,          -- wall clock of the evaluation
    as_of              timestamptz NOT NULL,          -- the instant the rules judged (--now)
    notes              jsonb NOT NULL DEFAULT '{}'::jsonb   -- rule id → why it was skipped
);

-- The change-log position (reading_changes.change_id) up to which changed parks were evaluated.
CREATE TABLE alarm_watermark (
    job                text PRIMARY KEY,
    last_change_id     bigint NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
