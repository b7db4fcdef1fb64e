"""Root test configuration: fixtures that start real services live in ``tests/fixtures``."""

pytest_plugins = ["tests.fixtures.services"]
