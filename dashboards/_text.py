"""Bilingual labels: every title, description and legend is written once in Chinese and English.

``parkpulse dashboards build`` renders one dashboard set per :class:`Lang`: ``zh`` (简体中文), ``en`` or
``bi`` (both, "中文 · English", the default: park energy managers and reviewers read the same screen).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

SEPARATOR: Final = " · "


class Lang(StrEnum):
    """Language of a rendered dashboard set."""

    ZH = "zh"
    EN = "en"
    BI = "bi"

    @property
    def uid_suffix(self) -> str:
        """Appended to dashboard uids so the three sets can live side by side in one Grafana."""
        return "" if self is Lang.BI else f"-{self.value}"


@dataclass(frozen=True, slots=True)
class T:
    """One label in both languages."""

    zh: str
    en: str

    def render(self, lang: Lang) -> str:
        """The label in ``lang``; the bilingual form puts Chinese first."""
        if lang is Lang.ZH:
            return self.zh
        if lang is Lang.EN:
            return self.en
        return f"{self.zh}{SEPARATOR}{self.en}" if self.zh != self.en else self.en
