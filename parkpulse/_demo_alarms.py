"""The demo's last step: the park's targets with their year-end projection and 预警 level, and the alarms
the simulated day raised (one meter of the scenario goes silent for the last hours of the window).

Alarms are judged as of the end of the simulated window, so what the simulator did afterwards (every
device's clean "offline" status when it stops) does not count as an outage.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
from rich import box
from rich.console import Console
from rich.table import Table

from alarms._evaluate import AlarmEvaluator
from alarms._lifecycle_store import list_alarms
from alarms._targets_demo import print_projection, set_demo_targets

SHOWN = 8      # alarms listed in the demo's table
DETAILED = 3   # of which the first ones with their message


def run_targets_and_alarms(database_url: str, park_id: str, window_end: datetime, console: Console) -> int:
    """Set the demo targets, print the projection table, judge the alarm rules and print the open alarms.

    Returns the number of open alarms.
    """
    console.print("[bold]8/8[/] targets (预警) and alarms")
    with psycopg.connect(database_url, autocommit=True) as conn:
        set_demo_targets(conn, park_id)
        print_projection(conn, park_id, console)
    run = AlarmEvaluator.from_settings(database_url).run([park_id], now=window_end)
    console.print(f"    judged as of {window_end:%Y-%m-%d %H:%M} UTC; {run.summary()}", markup=False)
    with psycopg.connect(database_url, autocommit=True) as conn:
        alarms, total = list_alarms(conn, park_id, states=("open", "acknowledged"))
    table = Table("id", "severity", "rule", box=box.SIMPLE_HEAD, title=f"Open alarms ({total})", title_justify="left")
    table.add_column("subject", overflow="fold")
    for a in alarms[:SHOWN]:
        table.add_row(str(a.alarm_id), a.severity, a.rule_id, a.subject)
    console.print(table if alarms else "    no open alarms")
    for a in alarms[:DETAILED]:
        prefix = f"    #{a.alarm_id} "
        room = 79 - len(prefix)
        text = a.message_en if len(a.message_en) <= room else a.message_en[: room - 1] + "…"
        console.print(prefix + text, markup=False)
    if total > SHOWN:
        console.print(f"    … and {total - SHOWN} more: parkpulse alarms list --park {park_id}", markup=False)
    if alarms:
        console.print(f"    acknowledge one: parkpulse alarms ack {alarms[0].alarm_id} --by NAME --comment TEXT",
                      markup=False)
    return total
