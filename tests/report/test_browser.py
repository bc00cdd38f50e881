"""The report as a reader sees it: rendered by headless Chromium at a laptop and a phone width."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from .browser import Browser, find_chromium

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed here; .ci/run installs "
                                "Debian's chromium package before the tests, and `apt-get install chromium` does "
                                "it by hand.")


WIDTHS = {"laptop": (1280, False), "phone": (390, True)}


@pytest.fixture(scope="module")
def visits(report):
    """The page opened at each width in one browser."""
    with Browser() as browser:
        return {name: browser.visit(report.html_path, width=width, mobile=mobile)
                for name, (width, mobile) in WIDTHS.items()}


@pytest.mark.parametrize("name", WIDTHS)
def test_page_renders_without_errors_or_requests(report, visits, name):
    visit, width = visits[name], WIDTHS[name][0]
    assert visit.errors == []
    page_url = report.html_path.resolve().as_uri()
    assert [url for url in visit.requests if url != page_url and not url.startswith("data:")] == []
    facts = visit.facts
    assert facts["sections"] == ["overview", "curves", "errors", "top-losses", "architecture", "inside", "faithfulness"]
    assert facts["images"] >= 20 and facts["broken"] == []
    assert facts["scrollWidth"] <= facts["innerWidth"], "the page scrolls sideways"
    shot = np.asarray(Image.open(io.BytesIO(visit.screenshot)).convert("RGB"))
    assert shot.shape[1] == width and shot.shape[0] >= 2000
    colours = np.unique(shot[::4, ::4].reshape(-1, 3), axis=0)
    assert len(colours) > 200 and shot.std() > 20, "the screenshot is blank"
