"""Which install this is: the full server, or the slim edge install (``pip install 'parkpulse[edge]'``).

The edge install has what a gateway needs to poll meters and publish over MQTT, and none of the server's
database drivers, Polars, Arrow or web stack. Server commands stay listed in ``parkpulse --help`` there,
marked, and answer with the install command instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.util import find_spec
from typing import Final

import typer

#: What the server install adds; the edge install has none of them.
SERVER_PACKAGES: Final = frozenset({"psycopg", "psycopg_pool", "polars", "pyarrow", "adbc_driver_manager",
                                    "adbc_driver_postgresql", "fastapi", "starlette", "uvicorn", "httpx"})
SERVER_HINT: Final = "pip install 'parkpulse[server]'"
#: Shown in --help, where rich would read "[server]" as markup: escaped.
EDGE_NOTE: Final = "(needs the server install: pip install 'parkpulse\\[server]')"

#: Commands that need the server install, with their one-line help (shown in the edge install).
SERVER_COMMANDS: Final[dict[str, str]] = {
    "services": "Start, stop and inspect local Mosquitto and TimescaleDB.",
    "db": "Database schema.",
    "ingest": "Run an ingest instance: MQTT persistent subscription → validated, idempotent batches in TimescaleDB.",
    "import": "Import historical readings and declared (non-metered) data.",
    "aggregate": "Compute interval energy, rollups, PUE and indicators for everything that changed.",
    "report": "Reports: indicators, balance, factors, per-meter energy and the monthly report files.",
    "demo": "Run a simulated park end to end on local services and print what was stored.",
    "registry": "Parks, sites and devices: add, update, import and export the registry ingest and aggregation use.",
    "meter-event": "Meter events: replacements, CT/PT ratio changes and confirmed resets (exact energy across them).",
    "alarms": "Operational alarms: list, acknowledge, evaluate the rules; notification delivery.",
    "targets": "Energy and carbon targets per park and their 预警 levels.",
    "quarantine": "Inspect and replay quarantined (rejected) messages and CSV rows.",
    "dr": "Demand response: flexibility, baselines, events, DR capacity.",
    "api": "Serve the utility API.",
    "api-keys": "Per-utility API keys scoped to parks, with read/write scopes (stored hashed).",
    "ven": "OpenADR 3 VEN: push ParkPulse reports to the configured VTN.",
    "dashboards": "Grafana dashboards as code: build JSON files, deploy over the HTTP API.",
    "bench": "Benchmarks that print figures.",
    "uplink": "Uploads to the government energy online-monitoring platforms.",
    "vpp": "Virtual power plant: OpenADR 2.0b/3 VENs, dispatch to devices, live M&V.",
}


def server_installed() -> bool:
    """True when the server's packages are importable (checked without importing them)."""
    return all(find_spec(name) is not None for name in ("psycopg", "polars", "pyarrow", "fastapi", "uvicorn"))


def missing_server_package(exc: ModuleNotFoundError) -> str | None:
    """The server package whose absence raised ``exc``, or None when it is something else."""
    root = (exc.name or "").split(".")[0]
    return root if root in SERVER_PACKAGES else None


def needs_server(name: str) -> Callable[[typer.Context], None]:
    """A stand-in for server command ``name`` in the edge install: it says what to install, exit code 2."""

    def stand_in(ctx: typer.Context) -> None:
        del ctx
        typer.echo(f"`parkpulse {name}` is part of the server install; this is the edge install (meters → MQTT "
                   f"only). Install the server with: {SERVER_HINT}", err=True)
        raise typer.Exit(2)

    return stand_in


def mount_stand_ins(app: typer.Typer) -> None:
    """Register every server command as a stand-in that accepts any arguments."""
    for name, help_text in SERVER_COMMANDS.items():
        app.command(name, help=f"{help_text} {EDGE_NOTE}", add_help_option=False,
                    context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(needs_server(name))
