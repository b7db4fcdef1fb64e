"""``parkpulse vpp …``: the DR loop. Each job registers its own commands (intake, OpenADR 3, dispatch, M&V)."""

from __future__ import annotations

import typer

from vpp._cli_dispatch import register as register_dispatch
from vpp._cli_intake import register as register_intake
from vpp._cli_mv import register as register_mv
from vpp._cli_oadr3 import register as register_oadr3

vpp_app = typer.Typer(help="Virtual power plant: OpenADR 2.0b/3 VENs, dispatch to devices, live M&V.",
                      no_args_is_help=True)
for _register in (register_intake, register_oadr3, register_dispatch, register_mv):
    _register(vpp_app)
