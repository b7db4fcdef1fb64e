-- Balance per carrier (GB 17167, issue 12): every term of the supply side is kept next to the demand side.
--
--   supply     = level-1 import + on-site generation behind the boundary − level-1 export
--   demand     = Σ level-2 import − Σ level-2 export          (stored in level2_energy, as before)
--   difference = supply − demand (losses and unmetered load), difference_pct relative to supply
--
-- One row per (park, grain, period, carrier); ``metric`` names the carrier's import metric and
-- ``level1_energy`` keeps the level-1 import. Rows computed before this migration have NULL terms:
-- `parkpulse aggregate --rebuild` recomputes them.
ALTER TABLE balance_checks
    ADD COLUMN unit                 text,
    ADD COLUMN export_energy        double precision,
    ADD COLUMN generation_energy    double precision,
    ADD COLUMN supply_energy        double precision,
    ADD COLUMN level2_import_energy double precision,
    ADD COLUMN level2_export_energy double precision;

COMMENT ON COLUMN balance_checks.level1_energy IS 'level-1 (boundary) import of the carrier, in unit';
COMMENT ON COLUMN balance_checks.export_energy IS 'level-1 (boundary) export of the carrier, in unit';
COMMENT ON COLUMN balance_checks.generation_energy IS
    'on-site generation behind the boundary and outside any level-2 meter (PV, CHP …), in unit';
COMMENT ON COLUMN balance_checks.supply_energy IS 'import + generation − export, in unit';
COMMENT ON COLUMN balance_checks.level2_energy IS 'Σ level-2 import − Σ level-2 export (the demand side), in unit';
COMMENT ON COLUMN balance_checks.difference IS 'supply − demand (losses and unmetered load), in unit';
COMMENT ON COLUMN balance_checks.difference_pct IS 'difference relative to the supply side, %';
