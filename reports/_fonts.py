"""Finding the CJK font the reports draw Chinese with, for both the PDF and the charts.

The report never prints tofu boxes: a font is accepted only if it covers every character the report
will draw, and only if it has TrueType outlines (``glyf``), because ReportLab embeds TrueType only (the
OpenType/CFF Noto CJK files are refused). The project's choice is Debian's ``fonts-wqy-microhei``
(5 MB, TrueType collection, GPLv3 with font exception, also in Ubuntu): the Dockerfile installs it,
``parkpulse report fonts --install`` installs it as root, and ``PARKPULSE_REPORT_FONT_FILE`` can name
any other TrueType file. When none is found, :class:`~reports.errors.FontNotFoundError` says what to
install. The Excel workbook needs no font (Excel draws its own).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

from fontTools.ttLib import TTCollection, TTFont, TTLibError

from reports.errors import FontNotFoundError

logger = logging.getLogger(__name__)

DEBIAN_PACKAGE: Final = "fonts-wqy-microhei"
#: Checked first, in this order: the files of Debian's TrueType CJK font packages.
KNOWN_FILES: Final = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),      # fonts-wqy-microhei (the project's choice)
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),        # fonts-wqy-zenhei
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),          # fonts-arphic-uming
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),  # fonts-droid-fallback
)
SEARCH_DIRS: Final = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
#: Characters every accepted font must have: the report's fixed Chinese labels use these and more.
PROBE: Final = "综合能耗月度报告园区二氧化碳排放电表数据质量平衡负荷持续曲线"


@dataclass(frozen=True, slots=True)
class CjkFont:
    """A usable font file (first face of a collection) and the code points it covers."""

    path: Path
    family: str
    codepoints: frozenset[int]

    def missing(self, texts: Iterable[str]) -> set[str]:
        """Characters of ``texts`` the font cannot draw (whitespace and control characters ignored)."""
        return {ch for text in texts for ch in text if ch.isprintable() and not ch.isspace()
                and ord(ch) not in self.codepoints}

    def require(self, texts: Iterable[str]) -> None:
        """Raise :class:`FontNotFoundError` if any character of ``texts`` would print as a box."""
        gaps = self.missing(texts)
        if gaps:
            shown = "".join(sorted(gaps)[:20])
            raise FontNotFoundError(f"{self.path.name} has no glyph for {shown!r}")


def _read_face(path: Path) -> tuple[bool, dict[int, str], str]:
    """(has TrueType outlines, character map, family name) of the file's first face; the file is closed after."""
    with path.open("rb") as fh:
        if path.suffix.lower() in (".ttc", ".otc"):
            return _describe(TTCollection(fh, lazy=True).fonts[0], path)
        return _describe(TTFont(fh, lazy=True, fontNumber=0), path)


def _describe(face: TTFont, path: Path) -> tuple[bool, dict[int, str], str]:
    return "glyf" in face, dict(face.getBestCmap() or {}), str(face["name"].getBestFamilyName() or path.stem)


def load_font(path: Path) -> CjkFont | None:
    """The font at ``path`` if it is TrueType-outlined and covers :data:`PROBE`, else ``None``."""
    try:
        truetype, cmap, family = _read_face(path)
    except (OSError, TTLibError, KeyError, AssertionError) as exc:
        logger.debug("%s: not a usable font (%s)", path, exc)
        return None
    if not truetype:
        logger.debug("%s: no TrueType outlines (CFF), ReportLab cannot embed it", path)
        return None
    codepoints = frozenset(cmap)
    if any(ord(ch) not in codepoints for ch in PROBE):
        return None
    return CjkFont(path, family, codepoints)


def _candidates(search_dirs: Sequence[Path]) -> Iterable[Path]:
    for folder in search_dirs:
        if folder.is_dir():
            yield from sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".ttf", ".ttc"))


@lru_cache(maxsize=8)
def find_cjk_font(configured: Path | None = None, known: tuple[Path, ...] = KNOWN_FILES,
                  search_dirs: tuple[Path, ...] = SEARCH_DIRS) -> CjkFont:
    """The configured font file, else the first known or installed font that draws Chinese.

    Raises:
        FontNotFoundError: nothing usable is installed (the message says what to install).
    """
    if configured is not None:
        font = load_font(configured)
        if font is None:
            raise FontNotFoundError(f"PARKPULSE_REPORT_FONT_FILE={configured} is missing, not TrueType-outlined "
                                    "or lacks Chinese glyphs")
        return font
    seen: set[Path] = set()
    for path in (*known, *_candidates(search_dirs)):
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        font = load_font(path)
        if font is not None:
            logger.debug("report font: %s (%s)", path, font.family)
            return font
    raise FontNotFoundError(f"searched {', '.join(str(d) for d in search_dirs)}")


def install_font_package() -> str:
    """Install :data:`DEBIAN_PACKAGE` with apt-get (root on Debian/Ubuntu only); returns what was done.

    Raises:
        FontNotFoundError: not root, no apt-get, or the install failed (with apt's last words).
    """
    apt = shutil.which("apt-get")
    if apt is None or not Path("/etc/debian_version").is_file():
        raise FontNotFoundError("not a Debian/Ubuntu system: install a Simplified Chinese TrueType font with your "
                                "package manager")
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        raise FontNotFoundError(f"installing {DEBIAN_PACKAGE} needs root: run `sudo apt-get install {DEBIAN_PACKAGE}`")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    def apt_get(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([apt, *args], capture_output=True, text=True, env=env, timeout=900,  # noqa: S603
                              check=False)

    done = apt_get("install", "-y", "-q", DEBIAN_PACKAGE)
    if done.returncode != 0:  # a fresh machine has no package lists yet
        apt_get("update", "-q")
        done = apt_get("install", "-y", "-q", DEBIAN_PACKAGE)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FontNotFoundError(f"apt-get install {DEBIAN_PACKAGE} failed: {tail[0]}")
    find_cjk_font.cache_clear()
    return f"installed {DEBIAN_PACKAGE}"
