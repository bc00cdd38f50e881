"""The report of a run: one self-contained HTML page with its curves, errors, architecture and explanations."""

from cnnlab.report.api import write_report

__all__ = ["write_report"]
