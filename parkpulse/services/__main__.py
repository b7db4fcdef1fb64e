"""``python -m parkpulse.services up|down|status``."""

import logging

from parkpulse.services._cli import services_app

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
services_app(prog_name="python -m parkpulse.services")
