"""Fixtures of the report tests: the CJK font (tests/fixtures/fonts.py)."""

from __future__ import annotations

from tests.fixtures.fonts import cjk_font

__all__ = ["cjk_font"]
