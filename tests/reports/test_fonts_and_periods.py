"""The font search refuses what would print boxes and says what to install; month parsing never crashes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from reports._fonts import CjkFont, find_cjk_font, load_font
from reports._gather import month_of
from reports.errors import FontNotFoundError, ReportPeriodError

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def test_no_font_names_the_package_to_install(tmp_path: Path):
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    with pytest.raises(FontNotFoundError) as err:
        find_cjk_font(None, known=(), search_dirs=(tmp_path,))
    assert "apt-get install fonts-wqy-microhei" in str(err.value)
    assert "PARKPULSE_REPORT_FONT_FILE" in str(err.value)


@pytest.mark.skipif(not DEJAVU.is_file(), reason="needs DejaVu Sans (fonts-dejavu-core)")
def test_a_latin_only_font_is_refused_even_when_configured():
    assert load_font(DEJAVU) is None
    with pytest.raises(FontNotFoundError, match="lacks Chinese glyphs"):
        find_cjk_font(DEJAVU, known=(), search_dirs=())


def test_coverage_check_names_the_missing_characters():
    font = CjkFont(Path("x.ttf"), "X", frozenset(map(ord, "abc 园区")))
    assert font.missing(["abc\n园区", "ab\tc"]) == set()
    assert font.missing(["园区d", "区"]) == {"d"}
    with pytest.raises(FontNotFoundError, match="has no glyph for 'de'"):
        font.require(["ed"])


def test_months_only_and_not_in_the_future():
    assert month_of("2026-10", date(2026, 12, 1)).label == "2026-10"
    assert month_of(" 2026-12 ", date(2026, 12, 1)).start == date(2026, 12, 1)
    with pytest.raises(ReportPeriodError, match="one month"):
        month_of("2026-Q4", date(2026, 12, 1))
    with pytest.raises(ReportPeriodError, match="not started"):
        month_of("2027-01", date(2026, 12, 31))
    with pytest.raises(ReportPeriodError, match=r"01\.\.12"):
        month_of("2026-13", date(2026, 12, 31))


@given(text=st.text(max_size=20))
@example(text="²")       # a digit to str.isdigit(), not to int(): once raised ValueError
@example(text="٢٠٢٦-٠١")  # Arabic-Indic digits: not a period of ours
def test_any_period_text_gives_a_month_or_a_clear_error(text: str):
    period, error = None, None
    try:
        period = month_of(text, date(2026, 12, 1))
    except ReportPeriodError as exc:
        error = exc
    if error is not None:
        assert "YYYY-MM" in error.reason or "not started" in error.reason
        assert error.text == text
    else:
        assert period is not None
        assert period.kind == "month"
        assert period.start <= date(2026, 12, 1)
