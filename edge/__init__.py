"""ParkPulse edge agent: polls meters, stores every reading durably, publishes over MQTT at QoS 1.

Layers (pure core, I/O at the edges):

* codecs and data: :mod:`edge.dlt645` (DL/T 645-2007 frames), :mod:`edge.registers` (Modbus value
  decoding), :mod:`edge.profile` + ``edge/profiles/*.yaml`` (register maps), :mod:`edge.payload`;
* storage: :mod:`edge.outbox` (SQLite WAL store-and-forward) and :mod:`edge.store` (its async front);
* I/O adapters: :mod:`edge.readers` (Modbus TCP, DL/T 645 over TCP), :mod:`edge.session` (one MQTT
  session per device with birth, last will and paced backlog drain);
* orchestration: :mod:`edge.agent`, configured by :mod:`edge.config` (``edge.yaml``).
"""

from edge.agent import DeviceHealth, EdgeAgent
from edge.config import EdgeConfig, EdgeSettings, load_config, parse_config
from edge.errors import EdgeError
from edge.outbox import FullPolicy, Outbox, OutboxStats

__all__ = [
    "DeviceHealth",
    "EdgeAgent",
    "EdgeConfig",
    "EdgeError",
    "EdgeSettings",
    "FullPolicy",
    "Outbox",
    "OutboxStats",
    "load_config",
    "parse_config",
]
