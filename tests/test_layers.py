"""Imports run one way: from the top layer down. The layers are written down here, once.

A module may import its own package and packages of lower layers, never a package of its own layer or
of a higher one. Every import counts: at module level, inside functions, and under ``TYPE_CHECKING``.
The README's layout section describes the same layers in prose.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Top to bottom. One sentence each in the README ("Layout").
LAYERS: tuple[tuple[str, ...], ...] = (
    ("parkpulse",),                         # the command line, the demo, the local-services manager
    ("api", "dashboards"),                  # what people and utilities see: the utility API, Grafana
    ("vpp",),                               # the DR loop: OpenADR 2.0b/3 VENs, event intake, dispatch, live M&V
    ("flex", "simulators", "reports", "alarms", "uplink"),  # DR and flexibility; simulated parks; report
                                            # files; 预警 and alarms; uploads to the energy monitoring platforms
    ("ingest", "edge", "aggregation"),      # the services: MQTT → database, meters → MQTT, readings → indicators
    ("infra",),                             # shared infrastructure: settings, paths, logging, lazy exports, db
    ("schemas",),                           # the contracts: topics, payloads, metrics, units, SQL
)
LEVEL = {package: depth for depth, packages in enumerate(LAYERS) for package in packages}


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def uphill_imports(root: Path) -> list[str]:
    """Every import in ``root``'s layered packages that reaches a package of the same or a higher layer."""
    problems: list[str] = []
    for package, level in LEVEL.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, target in imported_packages(path.read_text(encoding="utf-8")):
                if target == package or target not in LEVEL:
                    continue
                if LEVEL[target] <= level:
                    problems.append(f"{path.relative_to(root)}:{line}: {package} (layer {len(LAYERS) - level}) "
                                    f"imports {target} (layer {len(LAYERS) - LEVEL[target]})")
    return problems


def test_imports_run_from_the_top_layer_down() -> None:
    assert uphill_imports(ROOT) == []


def test_every_top_level_package_has_a_layer() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "scripts"}
    assert packages == set(LEVEL)


def test_the_check_catches_an_uphill_import(tmp_path: Path) -> None:
    for package in LEVEL:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "infra" / "settings.py").write_text("from ingest import IngestSettings\n", encoding="utf-8")
    (tmp_path / "edge" / "agent.py").write_text("def f():\n    import aggregation._jobs\n", encoding="utf-8")
    (tmp_path / "ingest" / "ok.py").write_text("import schemas\nfrom infra.settings import X\n", encoding="utf-8")
    assert sorted(uphill_imports(tmp_path)) == [
        "edge/agent.py:2: edge (layer 3) imports aggregation (layer 3)",
        "infra/settings.py:1: infra (layer 2) imports ingest (layer 3)",
    ]
