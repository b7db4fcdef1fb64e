"""Ingest memory: RSS of one `parkpulse ingest` process at a steady 5,000 readings/s and during a catch-up.

Runs against the local services (`parkpulse services up`). Registers a park of its own, starts one ingest
process for it, publishes ``--rate`` readings/s at QoS 1 (``--devices`` devices, one message per device per
second) for ``--duration`` seconds and samples the process's VmRSS every 0.25 s. Then it stops ingest for
``--outage`` seconds while publishing on, restarts it, and samples the catch-up. The last line is JSON:

    python scripts/bench_ingest_memory.py --rate 5000 --duration 60 --outage 20

It also prints which heavy packages the ingest process imports (through ``python -X importtime``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from infra.settings import ServiceSettings, parse_mqtt_url

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("polars", "pyarrow", "adbc_driver_postgresql", "fastapi", "uvicorn", "pymodbus", "numpy", "httpx")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_ingest(park: str, client_id: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PARKPULSE_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([str(ROOT / ".venv/bin/parkpulse"), "ingest", "--park", park, "--client-id", client_id,
                             "--metrics-port", "-1", "--no-migrate"], env=env)


class Publisher(threading.Thread):
    """Publishes ``rate`` readings/s until stopped: one message of rate/devices readings per device per second."""

    def __init__(self, mqtt_url: str, park: str, rate: int, devices: int) -> None:
        super().__init__(daemon=True)
        ep = parse_mqtt_url(mqtt_url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-mem-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.connect(ep.host, ep.port)
        self.client.loop_start()
        self.park, self.per_message, self.devices = park, max(1, rate // devices), devices
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        t0 = datetime.now(UTC) - timedelta(days=1)
        second = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            for d in range(self.devices):
                start = t0 + timedelta(seconds=second * self.per_message)
                readings = [{"ts": (start + timedelta(seconds=i)).isoformat(), "metric": "active_power",
                             "value": 10.0 + i % 7, "unit": "kW"} for i in range(self.per_message)]
                payload = json.dumps({"v": 1, "device": f"d{d}", "seq": second, "readings": readings})
                self.client.publish(f"parkpulse/v1/{self.park}/d{d}/readings", payload, qos=1)
                self.sent += self.per_message
            second += 1
            next_at += 1.0
            time.sleep(max(0.0, next_at - time.monotonic()))
        self.client.loop_stop()
        self.client.disconnect()


def sample(proc: subprocess.Popen[bytes], seconds: float) -> list[float]:
    out: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and proc.poll() is None:
        out.append(rss_mb(proc.pid))
        time.sleep(0.25)
    return out


def stored(db: str, park: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute("""SELECT count(*) FROM readings r JOIN series s USING (series_id)
                              JOIN devices d USING (device_key) WHERE d.park_id = %s""", (park,)).fetchone()
    return int(row[0]) if row else 0


def heavy_imports() -> list[str]:
    code = "import parkpulse.cli, ingest.service"
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                         check=True).stderr
    names = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in err.splitlines() if "|" in line}
    return sorted(names & set(HEAVY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--outage", type=float, default=20.0)
    args = parser.parse_args()
    settings = ServiceSettings()  # type: ignore[call-arg]
    park = f"bench-mem-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO parks (park_id, auto_register) VALUES (%s, true)", (park,))
    client_id = f"bench-mem-{park}"
    proc = start_ingest(park, client_id)
    time.sleep(3.0)
    idle = rss_mb(proc.pid)
    pub = Publisher(settings.mqtt_url, park, args.rate, args.devices)
    pub.start()
    steady = sample(proc, args.duration)
    proc.terminate()
    proc.wait(30)
    time.sleep(args.outage)  # the broker queues what is published meanwhile
    proc = start_ingest(park, client_id)
    catch_up = sample(proc, 20.0)
    pub.stop.set()
    pub.join(10)
    time.sleep(3.0)
    proc.terminate()
    proc.wait(30)
    half = steady[len(steady) // 2:] or [0.0]
    result = {
        "rate_readings_per_s": args.rate, "devices": args.devices, "duration_s": args.duration,
        "rss_idle_mb": round(idle, 1),
        "rss_steady_median_mb": round(statistics.median(half), 1), "rss_steady_max_mb": round(max(half), 1),
        "rss_catch_up_max_mb": round(max(catch_up or [0.0]), 1), "outage_s": args.outage,
        "published": pub.sent, "stored": stored(settings.database_url, park), "heavy_imports": heavy_imports(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
