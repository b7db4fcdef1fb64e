"""The registry on the real database: partial updates, who owns a device attribute, and file imports
that are all-or-nothing, report before they write, and round-trip through an export losslessly."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from infra.db import (
    RegistryConflictError,
    RegistryFileError,
    RegistryNotFoundError,
    available_migrations,
    dump_registry,
    get_device,
    get_park,
    import_registry,
    migrate,
    parse_registry,
    read_registry,
    save_device,
    save_park,
    save_site,
)
from tests.fixtures.services import unique_park_id

pytestmark = pytest.mark.services


@pytest.fixture
def park(request: pytest.FixtureRequest, db_conn: psycopg.Connection) -> Iterator[str]:
    """A park id of this test's own, not registered yet (removed afterwards with everything in it)."""
    park_id = unique_park_id(request)
    yield park_id
    db_conn.execute("DELETE FROM parks WHERE park_id = %s", (park_id,))


def registry_file(park_id: str, *, ws_b_level: int = 2, extra_site: bool = False, bad_site: bool = False) -> str:
    lines = [
        "park:",
        f"  park_id: {park_id}",
        "  name: 滨江智造园",
        "  province: 江苏",
        "  sites:",
        "    - {site_id: ws-a, kind: workshop, floor_area_m2: 12000, roof_area_m2: 9000}",
        "    - {site_id: ws-b, kind: workshop, floor_area_m2: 8000}",
    ]
    if extra_site:
        lines.append("    - {site_id: office, kind: building, is_public_building: true}")
    lines += [
        "  devices:",
        "    - {device_id: grid-in, kind: electricity_meter, carrier: electricity, metering_level: 1, "
        "role: park_boundary, multiplier: 200}",
        "    - {device_id: ws-a, kind: electricity_meter, metering_level: 2, site: ws-a}",
        f"    - {{device_id: ws-b, kind: electricity_meter, metering_level: {ws_b_level}, site: ws-b}}",
    ]
    if bad_site:
        lines.append("    - {device_id: ghost, site: nowhere}")
    return "\n".join(lines) + "\n"


def columns(conn: psycopg.Connection, park_id: str, device_id: str, *names: str) -> tuple[object, ...]:
    row = conn.execute(f"SELECT {', '.join(names)} FROM devices WHERE park_id = %s AND device_id = %s",
                       (park_id, device_id)).fetchone()
    assert row is not None
    return tuple(row)


def test_park_and_site_updates_change_only_what_is_given(db_conn, park):
    assert save_park(db_conn, park, {"name": "A", "province": "广东"}, mode="create") is True
    assert save_park(db_conn, park, {"grid_region": "南方"}, mode="update") is False
    row = get_park(db_conn, park)
    assert (row["name"], row["province"], row["grid_region"], row["timezone"], row["auto_register"]) == \
        ("A", "广东", "南方", "Asia/Shanghai", False)
    with pytest.raises(RegistryConflictError, match="registered already"):
        save_park(db_conn, park, {}, mode="create")
    with pytest.raises(RegistryNotFoundError, match=f"parkpulse registry park add {park}-x"):
        save_park(db_conn, f"{park}-x", {"name": "B"}, mode="update")
    assert save_site(db_conn, park, "office", {"floor_area_m2": 5000.0, "is_public_building": True}) is True
    save_site(db_conn, park, "office", {"roof_area_m2": 1200.0}, mode="update")
    assert db_conn.execute("SELECT kind, floor_area_m2, roof_area_m2, is_public_building FROM sites "
                           "WHERE park_id = %s", (park,)).fetchone() == ("building", 5000.0, 1200.0, True)
    with pytest.raises(RegistryNotFoundError, match="registry park add"):
        save_site(db_conn, f"{park}-x", "office", {})


def test_device_attributes_set_by_the_operator_are_recorded_and_can_be_handed_back(db_conn, park):
    save_park(db_conn, park, {})
    with pytest.raises(RegistryNotFoundError, match=f"registry site add {park} ws-a"):
        save_device(db_conn, park, "m1", {"site_id": "ws-a"})
    save_site(db_conn, park, "ws-a", {})
    assert save_device(db_conn, park, "m1", {"role": "workshop", "multiplier": 40.0, "site_id": "ws-a"}) is True
    assert columns(db_conn, park, "m1", "role", "multiplier", "site_id", "operator_fields", "registered_by") == \
        ("workshop", 40.0, "ws-a", ["multiplier", "role", "site_id"], "operator")
    # a birth (simulated here; the real ingest path is in test_registry_birth.py) set the others
    db_conn.execute("UPDATE devices SET kind = 'gas_meter', metering_level = 3 WHERE park_id = %s", (park,))
    save_device(db_conn, park, "m1", {"multiplier": None, "kind": None, "metering_level": 2}, mode="update")
    # multiplier handed back: emptied (1); kind was the device's: left alone; metering level now the operator's
    assert columns(db_conn, park, "m1", "kind", "metering_level", "multiplier", "operator_fields") == \
        ("gas_meter", 2, 1.0, ["metering_level", "role", "site_id"])
    assert get_device(db_conn, park, "m1")["operator_fields"] == ["metering_level", "role", "site_id"]
    with pytest.raises(RegistryConflictError):
        save_device(db_conn, park, "m1", {}, mode="create")


def test_an_import_validates_everything_first_and_writes_nothing_on_a_problem(db_conn, park):
    text = registry_file(park, bad_site=True)
    parsed = parse_registry(text, "yaml")  # the file itself is fine; the site is missing in the database
    with pytest.raises(RegistryFileError) as caught:
        import_registry(db_conn, parsed)
    ghost_line = text.splitlines().index("    - {device_id: ghost, site: nowhere}") + 1
    assert [(p.line, p.field) for p in caught.value.problems] == [(ghost_line, "site_id")]
    assert "nowhere" in str(caught.value)
    assert db_conn.execute("SELECT count(*) FROM parks WHERE park_id = %s", (park,)).fetchone() == (0,)


def test_dry_run_reports_the_changes_and_writes_nothing(db_conn, park):
    parsed = parse_registry(registry_file(park), "yaml")
    plan = import_registry(db_conn, parsed, dry_run=True)
    assert plan.dry_run
    assert plan.counts() == {"park": {"created": 1, "updated": 0, "unchanged": 0},
                             "site": {"created": 2, "updated": 0, "unchanged": 0},
                             "device": {"created": 3, "updated": 0, "unchanged": 0}}
    assert db_conn.execute("SELECT count(*) FROM parks WHERE park_id = %s", (park,)).fetchone() == (0,)

    assert import_registry(db_conn, parsed).counts() == plan.counts()
    assert columns(db_conn, park, "grid-in", "metering_level", "role", "multiplier", "registered_by") == \
        (1, "park_boundary", 200.0, "operator")

    again = import_registry(db_conn, parse_registry(registry_file(park, ws_b_level=3, extra_site=True), "yaml"),
                            dry_run=True)
    assert again.counts() == {"park": {"created": 0, "updated": 0, "unchanged": 1},
                              "site": {"created": 1, "updated": 0, "unchanged": 2},
                              "device": {"created": 0, "updated": 1, "unchanged": 2}}
    [updated] = [c for c in again.changes if c.action == "updated"]
    assert (updated.entity_id, [(f.field, f.old, f.new) for f in updated.fields]) == \
        ("ws-b", [("metering_level", 2, 3)])
    assert columns(db_conn, park, "ws-b", "metering_level") == (2,)


def test_an_import_names_what_it_states_and_leaves_the_rest(db_conn, park):
    import_registry(db_conn, parse_registry(registry_file(park), "yaml"))
    db_conn.execute("INSERT INTO devices (park_id, device_id, registered_by) VALUES (%s, 'auto-1', 'auto'), "
                    "(%s, 'auto-2', 'auto')", (park, park))
    # a device birth-filled kind is not the operator's: an empty attribute in the file leaves it alone
    db_conn.execute("UPDATE devices SET carrier = 'electricity' WHERE park_id = %s AND device_id = 'ws-a'", (park,))
    text = registry_file(park) + "    - {device_id: auto-1, metering_level: 2}\n"
    report = import_registry(db_conn, parse_registry(text, "yaml"))
    assert report.devices_not_in_file == 1
    assert report.counts()["device"] == {"created": 0, "updated": 1, "unchanged": 3}
    assert columns(db_conn, park, "auto-1", "registered_by", "metering_level") == ("operator", 2)
    assert columns(db_conn, park, "auto-2", "registered_by") == ("auto",)
    assert columns(db_conn, park, "ws-a", "carrier") == ("electricity",)
    # dropping an operator attribute from the file hands it back to the device
    text = text.replace(", multiplier: 200", "")
    import_registry(db_conn, parse_registry(text, "yaml"))
    assert columns(db_conn, park, "grid-in", "multiplier", "operator_fields") == \
        (1.0, ["carrier", "kind", "metering_level", "role"])


def test_export_then_import_is_lossless_even_into_an_empty_database(db_conn, park, scratch_database_url):
    import_registry(db_conn, parse_registry(registry_file(park, extra_site=True), "yaml"))
    save_device(db_conn, park, "ws-b", {"register_max": 999999.99, "rated_power_kw": 630.5, "profile": "dtsu666",
                                        "carrier": "electricity"})
    save_park(db_conn, park, {"auto_register": True, "timezone": "Asia/Urumqi", "grid_region": "华东"})
    document = read_registry(db_conn, park)
    migrate(scratch_database_url)
    with psycopg.connect(scratch_database_url, autocommit=True) as empty:
        for fmt in ("yaml", "csv"):
            text = dump_registry(document, fmt)
            # into the same database: nothing changes
            assert not import_registry(db_conn, parse_registry(text, fmt)).changed
            # into an empty one: the same registry, byte for byte in both formats
            import_registry(empty, parse_registry(text, fmt))
            copy = read_registry(empty, park)
            assert copy == document
            assert dump_registry(copy, "yaml") == dump_registry(document, "yaml")
            assert dump_registry(copy, "csv") == dump_registry(document, "csv")
            empty.execute("DELETE FROM parks")
    assert {d.device_id: d.register_max for d in document.devices}["ws-b"] == 999999.99


def test_operator_registrations_made_before_version_5_keep_their_attributes(scratch_database_url):
    migrations = available_migrations()
    with psycopg.connect(scratch_database_url, autocommit=True) as conn:
        for mig in migrations:
            if mig.version < 5:
                conn.execute(mig.sql.encode())
        conn.execute("INSERT INTO parks (park_id) VALUES ('p')")
        conn.execute("""INSERT INTO devices (park_id, device_id, registered_by, kind, metering_level, multiplier,
                                             birth_at)
                        VALUES ('p', 'operator-only', 'operator', 'gas_meter', 2, 40, NULL),
                               ('p', 'born', 'operator', 'gas_meter', 2, 1, now()),
                               ('p', 'auto', 'auto', 'gas_meter', 1, 1, NULL)""")
        conn.execute(next(m for m in migrations if m.version == 5).sql.encode())
        owned = dict(conn.execute("SELECT device_id, operator_fields FROM devices").fetchall())
    assert owned == {"operator-only": ["kind", "metering_level", "multiplier"], "born": [], "auto": []}
