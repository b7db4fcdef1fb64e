"""``parkpulse uplink platform-sim``: serve a simulated energy online-monitoring platform over HTTPS.

Mount with ``from simulators.platform._cli import platform_sim_command`` and
``uplink_app.command("platform-sim")(platform_sim_command)`` (the ``uplink`` package may not import
``simulators``: same layer). Faults are given as ``--fault key=value`` (the fields of
:class:`~simulators.platform.Faults`) and can be changed while it runs with
``curl -X POST http://127.0.0.1:<admin-port>/admin/faults -d '{"down": "refuse", "down_for_s": 7200}'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from schemas.errors import UplinkProfileError
from simulators.platform._errors import PlatformSimError
from simulators.platform._server import PlatformSimulator
from simulators.platform._state import Faults


def parse_faults(pairs: list[str]) -> Faults:
    """``["error_rate=0.2", "reject_item_codes=E01,E02"]`` → :class:`Faults`; errors say which pair is wrong."""
    raw: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: expected key=value, e.g. error_rate=0.1", param_hint="--fault")
        lists = ("reject_item_codes", "refuse_batch_item_codes")
        raw[key.strip()] = value.split(",") if key.strip() in lists else value.strip()
    try:
        return Faults.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        raise typer.BadParameter(f"{first['loc'][0]}: {first['msg']} (known: {', '.join(Faults.model_fields)})",
                                 param_hint="--fault") from None


def parse_credentials(pairs: list[str]) -> dict[str, str]:
    """``["CODE:SECRET", ...]`` → mapping; empty means any pair is accepted."""
    credentials: dict[str, str] = {}
    for pair in pairs:
        code, sep, secret = pair.partition(":")
        if not sep or not code or not secret:
            raise typer.BadParameter(f"{pair!r}: expected ENTERPRISE_CODE:SECRET", param_hint="--unit")
        credentials[code] = secret
    return credentials


async def _serve(simulator: PlatformSimulator, as_json: bool) -> None:
    async with simulator:
        started = {"profile": simulator.profile.name, "base_url": simulator.base_url,
                   "admin_url": simulator.admin_url, "faults": simulator.state.faults.model_dump()}
        typer.echo(json.dumps(started) if as_json else
                   f"platform simulator ({simulator.profile.name}) on {simulator.base_url}"
                   + (f", admin on {simulator.admin_url}" if simulator.admin_url else "") + "; Ctrl-C stops it")
        await asyncio.Event().wait()


def platform_sim_command(
    *,
    profile: Annotated[str, typer.Option(help="Wire profile: national-json or guangdong-2013")] = "national-json",
    port: Annotated[int, typer.Option(help="HTTPS port of the platform endpoints")] = 8443,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate chain (PEM)", exists=True,
                                                  dir_okay=False)] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Server private key (PEM)", exists=True,
                                                 dir_okay=False)] = None,
    client_ca: Annotated[Path | None, typer.Option(help="Require client certificates signed by this CA",
                                                   exists=True, dir_okay=False)] = None,
    admin_port: Annotated[int, typer.Option(help="Plain-HTTP admin port on the listen address")] = 8444,
    unit: Annotated[list[str] | None, typer.Option(help="ENTERPRISE_CODE:SECRET accepted by the token "
                                                   "endpoint (repeat; none: accept any)")] = None,
    token_ttl_s: Annotated[float, typer.Option(help="Lifetime of issued tokens, seconds")] = 7200.0,
    fault: Annotated[list[str] | None, typer.Option(help="Fault key=value, e.g. error_rate=0.1, "
                                                    "reject_item_codes=E01,E02, down=503 (repeat)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the start line as JSON")] = False,
) -> None:
    """Serve a simulated energy online-monitoring platform (tests, demos, acceptance with a vendor)."""
    if tls_cert is None or tls_key is None:
        raise typer.BadParameter("the platform speaks HTTPS only: give --tls-cert and --tls-key (a test chain: "
                                 "python -c 'from tests.fixtures.tls_ca import make_tls_chain; "
                                 "make_tls_chain(__import__(\"pathlib\").Path(\"pki\"))')", param_hint="--tls-cert")
    try:
        simulator = PlatformSimulator(profile, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
                                      client_ca=client_ca, credentials=parse_credentials(unit or []),
                                      token_ttl_s=token_ttl_s, faults=parse_faults(fault or []),
                                      admin_port=admin_port)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(simulator, json_output))
    except (UplinkProfileError, PlatformSimError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
