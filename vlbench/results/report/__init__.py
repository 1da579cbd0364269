"""The static HTML report (``vlbench report``)."""

from vlbench.results.report.site import build_site

__all__ = ["build_site"]
