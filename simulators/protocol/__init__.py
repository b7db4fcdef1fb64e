"""Protocol simulators: Modbus TCP and DL/T 645 TCP servers backed by a small meter model.

The edge agent is tested against these real protocol peers (not mocks): the servers use the same
device profiles as the agent and inject the faults field meters show (see :mod:`.physics`).
"""

from simulators.protocol.dlt645 import Dlt645SimMeter, Dlt645SimServer
from simulators.protocol.modbus import ModbusSimDevice, ModbusSimServer
from simulators.protocol.physics import Faults, SimMeter, wall_clock

__all__ = [
    "Dlt645SimMeter",
    "Dlt645SimServer",
    "Faults",
    "ModbusSimDevice",
    "ModbusSimServer",
    "SimMeter",
    "wall_clock",
]
