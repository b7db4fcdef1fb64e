"""Simulated industrial parks published over MQTT, for demos, load tests and end-to-end tests.

A YAML :class:`Scenario` describes the park, its sites and devices (electricity meters on GB 17167 levels
1-3, a data centre, PV, a battery, EV chargers, an HVAC chiller or heat pump, gas and heat meters) and
their dispatch (battery schedules, EV power caps, HVAC setpoint offsets: a simulated DR event shows in the
metered data). Pure, seeded physics turns it into plausible readings in the park's local time;
:func:`run_simulation` publishes them (MQTT v5, QoS 1) as the ``schemas`` contract prescribes and returns
a :class:`SimulationReport` (with the EV sessions and their unmet energy). :func:`simulate` is the
``parkpulse simulate`` command.
"""

from simulators._cli import simulate
from simulators._ev import EvSession
from simulators._messages import PublishedReading
from simulators._publisher import MessageSink, SimulationReport, publish_simulation, run_simulation
from simulators._scenario import DEFAULT_SCENARIO, Scenario, load_scenario
from simulators._settings import SimulatorSettings
from simulators.errors import PublishError, ScenarioError, SimulatorError

__all__ = [
    "DEFAULT_SCENARIO",
    "EvSession",
    "MessageSink",
    "PublishError",
    "PublishedReading",
    "Scenario",
    "ScenarioError",
    "SimulationReport",
    "SimulatorError",
    "SimulatorSettings",
    "load_scenario",
    "publish_simulation",
    "run_simulation",
    "simulate",
]
