"""``cli/common.py``: the commands' stderr, plain lines without rich, markup through it."""

from __future__ import annotations

import pytest

from atoll.cli.common import Stderr, emphasis


def test_a_plain_line_is_written_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    Stderr().print("[id] guest said [bold]hi[/] :smile:", markup=False)
    assert capsys.readouterr().err == "[id] guest said [bold]hi[/] :smile:\n"


def test_a_plain_line_drops_what_a_terminal_would_act_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Stderr().print("ab\rc\x07d\x08e\tf\x1b[0m", markup=False)
    assert capsys.readouterr().err == "abcde\tf\x1b[0m\n"  # dropped as rich did; tab, ESC kept


def test_markup_goes_through_rich(capsys: pytest.CaptureFixture[str]) -> None:
    Stderr().print("[bold red]error:[/] it broke")
    assert capsys.readouterr().err == "error: it broke\n"  # not a terminal: no styles


def test_emphasis_only_on_a_colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert emphasis("atoll dev") == "atoll dev"  # stderr is captured: not a terminal
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert emphasis("atoll dev") == "\x1b[1matoll dev\x1b[0m"
    assert emphasis("bench", "36") == "\x1b[36mbench\x1b[0m"
