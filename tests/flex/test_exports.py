"""The public names of ``flex`` resolve (lazily) to the objects their modules define."""

from __future__ import annotations

import importlib

import flex


def test_every_exported_name_resolves():
    for name in flex.__all__:
        value = getattr(flex, name)
        module = importlib.import_module(flex._EXPORTS[name])
        assert getattr(module, name) is value, name
    assert sorted(flex._EXPORTS) == sorted(flex.__all__)
