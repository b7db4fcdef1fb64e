-- ParkPulse registry, version 5: the operator's asset registry (parkpulse registry, /v1/parks/{park}/...).
-- Runs on TimescaleDB 2.x and plain PostgreSQL >= 14.

-- Roof area next to floor area: the rooftop-PV coverage indicator (新建厂房屋顶光伏覆盖率) needs it.
ALTER TABLE sites ADD COLUMN roof_area_m2 double precision CHECK (roof_area_m2 IS NULL OR roof_area_m2 > 0);

-- Which device attributes the operator set (CLI, API or registry file). A birth message never overwrites
-- them; it fills only the attributes listed nowhere here (infra/db/_registry.py states the rule).
ALTER TABLE devices ADD COLUMN operator_fields text[] NOT NULL DEFAULT '{}'::text[]
    CHECK (operator_fields <@ ARRAY['kind', 'carrier', 'metering_level', 'site_id', 'role', 'register_max',
                                    'multiplier', 'rated_power_kw', 'profile']::text[]);

-- Before version 5 a birth overwrote every attribute, so only operator registrations that no birth has
-- touched yet are known to hold the operator's values: those become operator fields.
UPDATE devices SET operator_fields = array_remove(ARRAY[
        CASE WHEN kind IS NOT NULL THEN 'kind' END,
        CASE WHEN carrier IS NOT NULL THEN 'carrier' END,
        CASE WHEN metering_level IS NOT NULL THEN 'metering_level' END,
        CASE WHEN site_id IS NOT NULL THEN 'site_id' END,
        CASE WHEN role IS NOT NULL THEN 'role' END,
        CASE WHEN register_max IS NOT NULL THEN 'register_max' END,
        CASE WHEN multiplier <> 1 THEN 'multiplier' END,
        CASE WHEN rated_power_kw IS NOT NULL THEN 'rated_power_kw' END,
        CASE WHEN profile IS NOT NULL THEN 'profile' END]::text[], NULL)
    WHERE registered_by = 'operator' AND birth_at IS NULL;

-- An API key may be scoped to a park that is not registered yet, so that an operator holding a fresh
-- write key can create it (PUT /v1/parks/{park_id}) and bootstrap an empty database through the API alone.
ALTER TABLE api_client_parks DROP CONSTRAINT IF EXISTS api_client_parks_park_id_fkey;
