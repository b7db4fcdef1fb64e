"""Entry-point logging: a library that raises its own logger's level on import cannot flood the console."""

from __future__ import annotations

import logging

import pytest

from infra.logconfig import configure_logging


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("WARNING", False), ("DEBUG", True)])
def test_openleadr_info_is_shown_only_at_debug(level: str, shown: bool, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(level)
    try:
        logging.getLogger("openleadr").setLevel(logging.INFO)  # what openleadr.client does when imported
        logging.getLogger("openleadr").info("polled the VTN")
        logging.getLogger("openleadr").warning("VTN unreachable")
        logging.getLogger("vpp").warning("own warning")
        err = capsys.readouterr().err
        assert ("polled the VTN" in err) is shown
        assert "VTN unreachable" in err
        assert "own warning" in err
    finally:
        root.handlers[:], root.level = saved
        logging.getLogger("openleadr").setLevel(logging.NOTSET)
