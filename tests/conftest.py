"""Root test configuration: fixtures that start real services live in ``tests/fixtures``.

Hypothesis runs derandomized under CI (``CI`` set): CI checks the same generated cases every run, so a
random new find cannot decide whether an unrelated change lands. Locally it explores new cases each run.
"""

import os
from importlib.util import find_spec

from hypothesis import settings

# pytest-xdist workers start with COLUMNS=80 in their environment; rich fixes a console's width from COLUMNS
# when the console is made (at import), so the CLI tests' own COLUMNS would no longer apply. Start without it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

# The service fixtures need the server install; the edge install runs the edge tests without them
# (tests/edge/test_slim_install.py).
pytest_plugins = ["tests.fixtures.services"] if find_spec("psycopg") else []

settings.register_profile("ci", derandomize=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Under ``--dist loadgroup`` (``make test``), every test without a group joins the ``suite`` group.

    The suite then runs in order on one worker, as it does without xdist, while a group of its own (the VPP
    loop scenarios: minutes of waiting for one-minute event intervals) runs on the other worker beside it.
    """
    if getattr(config.option, "dist", "no") != "loadgroup":
        return
    import pytest

    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group("suite"))
