"""Root test configuration: fixtures that start real services live in ``tests/fixtures``.

Hypothesis runs derandomized under CI (``CI`` set): CI checks the same generated cases every run, so a
random new find cannot decide whether an unrelated change lands. Locally it explores new cases each run.
"""

import os

from hypothesis import settings

pytest_plugins = ["tests.fixtures.services"]

settings.register_profile("ci", derandomize=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))
