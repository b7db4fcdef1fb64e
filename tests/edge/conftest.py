"""In the edge install (no server packages), leave out the edge tests that run ingest and the database."""

from importlib.util import find_spec

collect_ignore = [] if find_spec("psycopg") else ["test_agent.py", "test_outage.py", "test_cjt188_agent.py"]
