-- ParkPulse demand response, version 7: each park's own calendar, layered over the built-in Chinese
-- public-holiday calendar (flex/data/cn_public_holidays.yaml). Written by `parkpulse dr calendar set` and
-- PUT /v1/parks/{park_id}/dr/calendar; read by every baseline (and so every event evaluation and capacity
-- figure) of the park. A park day always wins over the built-in calendar for that date.

CREATE TABLE dr_calendar_days (
    park_id     text NOT NULL REFERENCES parks (park_id) ON DELETE CASCADE,
    day         date NOT NULL CHECK (day >= DATE '2000-01-01' AND day < DATE '2100-01-01'),  -- park-local date
    -- holiday: the park does not produce (own shutdown, local holiday);
    -- workday: it works normally (调休上班 on a weekend, or production through a public holiday)
    kind        text NOT NULL CHECK (kind IN ('holiday', 'workday')),
    name        text NOT NULL DEFAULT '' CHECK (char_length(name) <= 64),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (park_id, day)
);
