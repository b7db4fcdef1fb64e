"""Root test configuration: fixtures that start real services live in ``tests/fixtures``.

Hypothesis runs derandomized under CI (``CI`` set): CI checks the same generated cases every run, so a
random new find cannot decide whether an unrelated change lands. Locally it explores new cases each run.
"""

import os
from importlib.util import find_spec

from hypothesis import settings

# The service fixtures need the server install; the edge install runs the edge tests without them
# (tests/edge/test_slim_install.py).
pytest_plugins = ["tests.fixtures.services"] if find_spec("psycopg") else []

settings.register_profile("ci", derandomize=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))
