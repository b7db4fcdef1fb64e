"""The public names of ``api`` resolve (lazily) to the objects their modules define."""

from __future__ import annotations

import importlib

import api


def test_every_exported_name_resolves():
    for name in api.__all__:
        value = getattr(api, name)
        module = importlib.import_module(api._EXPORTS[name])
        assert getattr(module, name) is value, name
    assert sorted(api._EXPORTS) == sorted(api.__all__)
