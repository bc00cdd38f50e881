"""Building a report shows a bar on a terminal (evaluation, then one step per section) and nothing in a log."""

import io
import sys

from cnnlab.report import write_report


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_evaluation_and_the_sections_a_log_sees_nothing(tiny_run, tmp_path, quick, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    write_report(tiny_run, samples=20, out=tmp_path / "tty.html", device="cpu", print_fn=lambda line: None)
    assert "evaluating:" in terminal.getvalue() and "report:   0%|          | 0/7" in terminal.getvalue()
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    write_report(tiny_run, samples=20, out=tmp_path / "log.html", device="cpu", print_fn=lambda line: None)
    assert log.getvalue() == ""
