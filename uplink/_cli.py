"""``parkpulse uplink …``: uploads to the energy online-monitoring platforms (status, run, export, quality)."""

from __future__ import annotations

import typer

uplink_app = typer.Typer(help="Uploads to the government energy online-monitoring platforms.", no_args_is_help=True)
