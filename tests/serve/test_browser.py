"""The page in a real browser: Playwright for Python driving the system Chromium against a live server.

A digit on a tiny trained run and skimage's `chelsea` on pretrained EfficientNet-Lite0: upload, wait for the
top classes and every map, pick another class, see the maps change, download a map and compare it with the
library's own call. At laptop and phone widths the page must not scroll sideways, log no error, and ask
nothing of any other address.
"""

from __future__ import annotations

import io
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.explain import METHODS
from cnnlab.explain.base import upsample
from cnnlab.explain.render import overlay
from cnnlab.serve import create_app

from ..report.browser import find_chromium
from .live import live_server

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed here; .ci/run installs "
                                "Debian's chromium package before the tests, and `apt-get install chromium` does "
                                "it by hand.")

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=find_chromium())
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def digits_site(digits_model):
    with live_server(create_app(digits_model)) as url:
        yield url


@pytest.fixture(scope="module")
def cat_site(cat_model):
    with live_server(create_app(cat_model)) as url:
        yield url


@contextmanager
def opened(browser, url: str, viewport: dict, mobile: bool = False, ready: str = "body[data-ready=true]"):
    """The page at `url` in a fresh context, `ready` shown; yields (page, errors, requests)."""
    context = browser.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors, requests = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(url)
        page.locator(ready).wait_for()
        yield page, errors, requests
    finally:
        context.close()


def wait_for_maps(page, target: int) -> dict[str, str]:
    """Wait until every automatic method shows its map for `target`; their heat images by method."""
    from playwright.sync_api import expect

    expect(page.locator(f'.card[data-auto=true]:not([data-state=done][data-target="{target}"])')).to_have_count(0)
    cards = page.locator(".card[data-auto=true]")
    return {cards.nth(i).get_attribute("data-method"): cards.nth(i).locator("img.heat").get_attribute("src")
            for i in range(cards.count())}


def top_classes(page) -> list[str]:
    from playwright.sync_api import expect

    expect(page.locator("#top li")).to_have_count(5)
    return page.locator("#top .name").all_inner_texts()


def pick_class(page, query: str, name: str) -> None:
    """Type `query` into the class search and click the class called exactly `name`."""
    page.fill("#class-search", query)
    exact = page.locator(".name", has_text=re.compile(f"^{re.escape(name)}$"))
    page.locator("#class-list li").filter(has=exact).click()


def download(page, selector: str) -> tuple[str, bytes]:
    with page.expect_download() as event:
        page.click(selector)
    return event.value.suggested_filename, Path(event.value.path()).read_bytes()


def check_layout(page, errors: list, requests: list, base: str, width: int) -> np.ndarray:
    """No sideways scrolling, no errors, no outside requests, a screenshot that is not blank."""
    assert errors == []
    assert [u for u in requests if not u.startswith((base, "data:", "blob:"))] == []
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, "the page scrolls sideways"
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB"))
    assert shot.shape[1] == width and len(np.unique(shot[::4, ::4].reshape(-1, 3), axis=0)) > 200
    return shot


def library_input(loaded, png: bytes, tmp_path: Path):
    path = tmp_path / "upload.png"
    path.write_bytes(png)
    return loaded.load_images([path])[0]


def test_digit_upload_maps_class_change_and_download(browser, digits_site, digits_model, digit_png, tmp_path):
    x = library_input(digits_model, digit_png, tmp_path)
    probabilities = digits_model.predict(x)[0]
    predicted = int(probabilities.argmax())
    other = int(probabilities.argsort()[0])  # the least likely class: its maps differ most
    with opened(browser, digits_site, LAPTOP) as (page, errors, requests):
        page.set_input_files("#file", files=[{"name": "digit.png", "mimeType": "image/png", "buffer": digit_png}])
        assert top_classes(page)[0] == digits_model.class_names[predicted]
        first = wait_for_maps(page, predicted)
        assert set(first) == set(METHODS), "a 16x16 input: every registered method runs at once"
        assert page.locator("#seen-caption").inner_text() == "what the network takes: 16×16 grey"
        assert page.locator("#seen").evaluate("image => [image.naturalWidth, image.naturalHeight]") == [16, 16]
        assert "Total params: 2,346" in page.locator("#summary").text_content()

        pick_class(page, digits_model.class_names[other], digits_model.class_names[other])
        second = wait_for_maps(page, other)
        changed = [method for method in first if first[method] != second[method]]
        assert len(changed) >= len(first) - 1, f"maps that stayed the same for another class: {changed}"
        assert page.locator("#target-name").inner_text() == digits_model.class_names[other]

        name, raw = download(page, ".card[data-method=gradcam] a.npy")
        assert name == f"digit.gradcam.{other}-{digits_model.class_names[other]}.npy"
        expected = METHODS["gradcam"](digits_model.network, x, other)[0].numpy()
        np.testing.assert_allclose(np.load(io.BytesIO(raw)), expected, rtol=1e-5, atol=1e-7)
        # The .png is the overlay as shown: render.overlay at the slider's opacity (to rounding).
        page.fill("#opacity", "0.7")
        assert page.locator(".card[data-method=saliency] img.heat").evaluate("i => getComputedStyle(i).opacity") \
            == "0.7"
        name, picture = download(page, ".card[data-method=saliency] button.png")
        assert name == f"digit.saliency.{other}-{digits_model.class_names[other]}.png"
        shown = np.asarray(Image.open(io.BytesIO(picture)).convert("RGB")).astype(int)
        image = torch.from_numpy(np.asarray(Image.open(io.BytesIO(digit_png)), np.float32) / 255)[None]
        saliency = upsample(METHODS["saliency"](digits_model.network, x, other), (32, 32))[0]
        expected = overlay(image, saliency, alpha=0.7, percentile=METHODS["saliency"].percentile).astype(int)
        assert np.abs(shown - expected).max() <= 2
        check_layout(page, errors, requests, digits_site, LAPTOP["width"])


def test_drop_and_paste_at_phone_width(browser, digits_site, digits_model, digit_png, tmp_path):
    with opened(browser, digits_site, PHONE, mobile=True) as (page, errors, requests):
        # What a drop and a paste deliver: a DataTransfer holding the file.
        send = """([kind, bytes]) => {
            const data = new DataTransfer();
            data.items.add(new File([new Uint8Array(bytes)], 'dropped.png', {type: 'image/png'}));
            const event = kind === 'drop' ? new DragEvent('drop', {dataTransfer: data, bubbles: true})
                                          : new ClipboardEvent('paste', {clipboardData: data, bubbles: true});
            (kind === 'drop' ? document.getElementById('drop') : document).dispatchEvent(event);
        }"""
        page.evaluate(send, ["drop", list(digit_png)])
        predicted = int(digits_model.predict(library_input(digits_model, digit_png, tmp_path)).argmax())
        wait_for_maps(page, predicted)
        assert page.locator("#shown-caption").inner_text().startswith("dropped:")
        check_layout(page, errors, requests, digits_site, PHONE["width"])
        flipped = np.ascontiguousarray(np.asarray(Image.open(io.BytesIO(digit_png)))[:, ::-1])
        buffer = io.BytesIO()
        Image.fromarray(flipped).save(buffer, format="PNG")
        page.evaluate(send, ["paste", list(buffer.getvalue())])
        from playwright.sync_api import expect

        expect(page.locator("#shown-caption")).to_have_text("pasted: 32×32")


def test_cat_photo_on_efficientnet_lite0(browser, cat_site, cat_model, cat_png, tmp_path):
    x = library_input(cat_model, cat_png, tmp_path)
    names = cat_model.class_names
    tiger_cat = names.index("tiger cat")
    with opened(browser, cat_site, LAPTOP) as (page, errors, requests):
        assert page.locator("#class-search").get_attribute("placeholder") == "search 1,000 classes"
        page.set_input_files("#file", files=[{"name": "chelsea.png", "mimeType": "image/png", "buffer": cat_png}])
        assert top_classes(page)[0] == "Egyptian cat"
        first = wait_for_maps(page, names.index("Egyptian cat"))
        slow = [m.name for m in METHODS.values() if m.slow]
        assert set(first) == set(METHODS) - set(slow), "slow methods wait to be asked on a 224x224 input"

        pick_class(page, "tiger", "tiger cat")
        second = wait_for_maps(page, tiger_cat)
        assert all(second[m] != first[m] for m in second if METHODS[m].class_specific), "maps change with the class"
        assert all(second[m] == first[m] for m in second if not METHODS[m].class_specific)
        name, raw = download(page, ".card[data-method=gradcam] a.npy")
        assert name == f"chelsea.gradcam.{tiger_cat}-tiger-cat.npy"
        np.testing.assert_allclose(np.load(io.BytesIO(raw)), METHODS["gradcam"](cat_model.network, x, tiger_cat)[0]
                                   .numpy(), rtol=1e-4, atol=1e-6)

        # The occlusion controls: a 112-pixel patch every 56 pixels, computed when asked.
        card = page.locator(".card[data-method=occlusion]")
        card.locator("details.options summary").click()
        card.locator("input[name=patch]").fill("112")
        card.locator("input[name=stride]").fill("56")
        card.locator("button.compute").click()
        page.locator(f'.card[data-method=occlusion][data-state=done][data-target="{tiger_cat}"]').wait_for()
        _, raw = download(page, ".card[data-method=occlusion] a.npy")
        expected = METHODS["occlusion"](cat_model.network, x, tiger_cat, patch=112, stride=56)[0].numpy()
        np.testing.assert_allclose(np.load(io.BytesIO(raw)), expected, rtol=1e-4, atol=1e-6)
        check_layout(page, errors, requests, cat_site, LAPTOP["width"])


def test_api_docs_page_renders_offline(browser, digits_site):
    docs = digits_site + "/docs"
    with opened(browser, docs, LAPTOP, ready="#swagger-ui .opblock >> nth=0") as (page, errors, requests):
        assert "/api/explain" in page.locator("#swagger-ui").inner_text()
        assert errors == []
        assert [u for u in requests if not u.startswith((digits_site, "data:", "blob:"))] == []
