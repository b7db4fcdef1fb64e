-- ParkPulse notifications, version 12: an outbox of bilingual messages and a record of every delivery.
-- Runs on TimescaleDB 2.x and plain PostgreSQL >= 14.
--
-- Producers (alarm transitions, 预警 level changes) insert into notification_outbox in the same transaction
-- as the change that caused the message (alarms/_notify.py), so a message exists if and only if the change
-- committed. The dispatcher (`parkpulse alarms notify`, alarms/_dispatch.py) routes each message to the
-- channels configured for its park and severity (one notification_deliveries row per channel), sends them,
-- retries failures with backoff, holds them through quiet hours and escalates unacknowledged critical
-- alarms to a second list. Every attempt, successful or not, is a notification_attempts row.

CREATE TABLE notification_outbox (
    notification_id   bigserial PRIMARY KEY,
    park_id           text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    dedupe_key        text NOT NULL CHECK (dedupe_key <> ''),     -- what it is about, e.g. alarm:123:raised
    severity          text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    title_zh          text NOT NULL,
    title_en          text NOT NULL,
    body_zh           text NOT NULL,
    body_en           text NOT NULL,
    links             jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(links) = 'object'),
    -- the alarm it is about; no foreign key: alarms has its own migration and history rules
    alarm_id          bigint,
    created_at        timestamptz NOT NULL,                      -- when the producer's change happened
    enqueued_at       timestamptz NOT NULL DEFAULT now(),
    routed_at         timestamptz,                               -- deliveries created (NULL: not yet)
    -- escalation of a critical alarm message: NULL = not decided yet (or not applicable before routing)
    escalation_state  text CHECK (escalation_state IN ('not_applicable', 'escalated', 'acknowledged', 'cleared')),
    escalated_at      timestamptz,
    escalated_after_minutes integer CHECK (escalated_after_minutes > 0),  -- the M the escalation waited
    CHECK ((escalation_state IS NOT DISTINCT FROM 'escalated') = (escalated_at IS NOT NULL AND escalated_after_minutes IS NOT NULL)),
    UNIQUE (park_id, dedupe_key)
);
CREATE INDEX notification_outbox_unrouted_idx ON notification_outbox (enqueued_at) WHERE routed_at IS NULL;
CREATE INDEX notification_outbox_escalation_idx ON notification_outbox (created_at)
    WHERE escalation_state IS NULL AND severity = 'critical' AND alarm_id IS NOT NULL;

-- One message to one configured channel, in the primary stage or the escalation stage.
CREATE TABLE notification_deliveries (
    delivery_id       bigserial PRIMARY KEY,
    notification_id   bigint NOT NULL REFERENCES notification_outbox (notification_id) ON DELETE CASCADE,
    stage             text NOT NULL CHECK (stage IN ('primary', 'escalation')),
    list_name         text NOT NULL,                             -- recipient list whose quiet hours apply
    channel           text NOT NULL,                             -- channel name in the notify config
    kind              text NOT NULL CHECK (kind IN ('email', 'webhook', 'wecom', 'dingtalk')),
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'cancelled')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at   timestamptz NOT NULL,                      -- due time; also the lease of a claimed row
    held_until        timestamptz,                               -- last quiet-hours hold (NULL: never held)
    last_error        text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    sent_at           timestamptz,
    CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
    UNIQUE (notification_id, stage, channel)
);
CREATE INDEX notification_deliveries_due_idx ON notification_deliveries (next_attempt_at) WHERE status = 'pending';

-- Each try of a delivery: what the channel answered, or why it failed.
CREATE TABLE notification_attempts (
    delivery_id       bigint NOT NULL REFERENCES notification_deliveries (delivery_id) ON DELETE CASCADE,
    attempt           integer NOT NULL CHECK (attempt >= 1),
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL,
    outcome           text NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed')),  -- failed: no more tries
    response          text,                                      -- the channel's answer (truncated, redacted)
    error             text,                                      -- why it failed (redacted)
    PRIMARY KEY (delivery_id, attempt),
    CHECK (finished_at >= started_at)
);
