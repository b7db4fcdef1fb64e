"""Shared infrastructure, the layer every service stands on.

Settings and their parsing (:mod:`infra.settings`), where local state lives (:mod:`infra.paths`), logging
set-up for entry points (:mod:`infra.logconfig`), the lazy-export helper (:mod:`infra.lazy`) and the
database plumbing several services share (:mod:`infra.db`: migrations, the park catalog and the registry).
It imports nothing of ParkPulse except the contracts in ``schemas``; ``tests/test_layers.py`` checks that.
"""
