"""``parkpulse simulate``: publish a simulated park over MQTT with a progress bar and a closing report.

:func:`simulate` is a plain function with typer annotations; ``parkpulse.cli`` registers it with
``app.command("simulate")(simulate)``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from simulators._publisher import SimulationReport, run_simulation
from simulators._scenario import DEFAULT_SCENARIO, load_scenario
from simulators._settings import SimulatorSettings
from simulators._timing import parse_duration
from simulators.errors import SimulatorError


def _seconds(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    if seconds != int(seconds):
        raise typer.BadParameter(f"{text!r} is not a whole number of seconds", param_hint=option)
    return int(seconds)


def print_report(report: SimulationReport, console: Console) -> None:
    """Print a finished run's figures as a table."""
    table = Table(title="simulation report", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for label, value in report.summary():
        table.add_row(label, value)
    console.print(table)


def simulate(
    *,
    scenario: Annotated[Path, typer.Option("--scenario", help="Scenario YAML file.", dir_okay=False)] = (
        DEFAULT_SCENARIO),
    duration: Annotated[str, typer.Option(help="Simulated span ending now: 15m, 2h, 1d, 1d12h.")] = "1d",
    speed: Annotated[float, typer.Option(
        min=0, help="Simulated seconds per wall second: 1 = real time, 1440 = a day per minute, 0 = flat out.",
    )] = 1440.0,
    meters: Annotated[int | None, typer.Option(
        "--meters", min=0, help="Number of generic level-3 meters (overrides extra_meters).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same readings.")] = 1,
    park_id: Annotated[str | None, typer.Option(help="Publish under this park id instead of the scenario's.")] = None,
    mqtt_url: Annotated[str | None, typer.Option(
        "--mqtt-url", help="Broker URL (default: PARKPULSE_MQTT_URL or .cache/services.env).")] = None,
    sample_interval: Annotated[str | None, typer.Option(help="Sample interval, e.g. 60s (default: scenario).")] = None,
    batch_interval: Annotated[str | None, typer.Option(help="Message interval, e.g. 15m (default: scenario).")] = None,
    duplicate_rate: Annotated[float | None, typer.Option(
        min=0, max=1, help="Share of readings messages published twice (default: scenario).")] = None,
    malformed_rate: Annotated[float | None, typer.Option(
        min=0, max=1, help="Share of readings messages followed by an invalid one (default: scenario).")] = None,
) -> None:
    """Publish a simulated industrial park (meters, PV, battery, EV chargers, HVAC, gas, heat) over MQTT."""
    console = Console(stderr=True)
    try:
        parsed = parse_duration(duration)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--duration") from None
    try:
        park = load_scenario(scenario).with_overrides(
            park_id=park_id, extra_meters=meters, duplicate_message_rate=duplicate_rate,
            malformed_message_rate=malformed_rate,
            sample_interval_s=_seconds(sample_interval, "--sample-interval"),
            batch_interval_s=_seconds(batch_interval, "--batch-interval"))
    except (SimulatorError, ValidationError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if mqtt_url is None:
        try:
            mqtt_url = SimulatorSettings().mqtt_url  # type: ignore[call-arg]
        except ValidationError:
            console.print("[red]no broker: pass --mqtt-url, set PARKPULSE_MQTT_URL or run "
                          "'parkpulse services up'[/red]")
            raise typer.Exit(2) from None

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[sim]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False) as bar:
        task = bar.add_task(f"simulating {park.park.id}", total=parsed.total_seconds(), sim="")

        def progress(done_s: float, total_s: float) -> None:
            bar.update(task, completed=done_s, total=total_s, sim=f"{done_s / 3600:.1f}/{total_s / 3600:.1f} h")

        try:
            report = asyncio.run(run_simulation(park, mqtt_url, duration=parsed, speed=speed, seed=seed,
                                                progress=progress))
        except SimulatorError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]stopped[/yellow]")
            raise typer.Exit(130) from None
    print_report(report, Console())
