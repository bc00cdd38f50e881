"""The JSON API on a tiny digits run: answers equal the library's own calls, and every bad input gets its status
code and a one-line message while the server goes on serving."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient

from cnnlab.explain import METHODS
from cnnlab.serve import create_app

from .conftest import png_bytes

BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def client(digits_model):
    with TestClient(create_app(digits_model), base_url=BASE) as client:
        yield client


@pytest.fixture(scope="module")
def reference_input(digits_model, digit_png, tmp_path_factory):
    """The digit as `cnnlab explain` reads it from a file: the batch the library's methods take."""
    path = tmp_path_factory.mktemp("digit") / "digit.png"
    path.write_bytes(digit_png)
    batch, _ = digits_model.load_images([path])
    return batch


def upload(png: bytes) -> dict:
    return {"image": ("digit.png", png, "image/png")}


def npy_from(answer: dict) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(answer["map"])))


def test_predict_is_the_library_prediction(client, digits_model, digit_png, reference_input):
    answer = client.post("/api/predict", files=upload(digit_png), data={"top": "5"}).json()
    expected = digits_model.predict(reference_input)[0]
    np.testing.assert_allclose(answer["probabilities"], expected.numpy(), atol=1e-6)
    assert [c["index"] for c in answer["top"]] == expected.topk(5).indices.tolist()
    assert [c["name"] for c in answer["top"]] == [digits_model.class_names[i] for i in expected.topk(5).indices]
    assert (answer["width"], answer["height"]) == (32, 32)
    seen = Image.open(io.BytesIO(base64.b64decode(answer["model_input"].split(",", 1)[1])))
    assert seen.size == (16, 16) and seen.mode == "L"
    np.testing.assert_allclose(np.asarray(seen) / 255, reference_input[0, 0].numpy(), atol=0.5 / 255 + 1e-6)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_registered_method_is_the_registry_call(client, digits_model, digit_png, reference_input, method):
    """Served maps are the registry's maps for the class asked (not the predicted one), at the input's size."""
    predicted = int(digits_model.predict(reference_input).argmax())
    target = (predicted + 3) % 10
    answer = client.post("/api/explain", files=upload(digit_png), data={"method": method, "target": str(target)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = METHODS[method](digits_model.network, reference_input, target)[0].numpy()
    served = npy_from(body)
    assert served.dtype == np.float32 and served.shape == expected.shape == (16, 16)
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-7)
    assert body["target"] == {"index": target, "name": digits_model.class_names[target]}
    assert (body["minimum"], body["maximum"]) == pytest.approx((expected.min(), expected.max()), rel=1e-5, abs=1e-7)
    heat = Image.open(io.BytesIO(base64.b64decode(body["heat"].split(",", 1)[1])))
    assert heat.size == (32, 32)
    raw = client.post("/api/explain", files=upload(digit_png),
                      data={"method": method, "target": str(target), "format": "npy"})
    np.testing.assert_array_equal(np.load(io.BytesIO(raw.content)), served)


def test_the_target_defaults_to_the_predicted_class(client, digits_model, digit_png, reference_input):
    predicted = int(digits_model.predict(reference_input).argmax())
    body = client.post("/api/explain", files=upload(digit_png), data={"method": "saliency"}).json()
    assert body["target"]["index"] == predicted
    np.testing.assert_allclose(npy_from(body), METHODS["saliency"](digits_model.network, reference_input)[0].numpy(),
                               rtol=1e-5, atol=1e-7)


def test_each_upload_gets_its_own_maps_and_the_decoded_cache_stays_bounded(client, digits_model, tmp_path):
    from cnnlab.serve.served import CACHED_IMAGES

    rng = np.random.default_rng(1)
    uploads = [png_bytes(rng.integers(0, 255, (20, 24), dtype=np.uint8)) for _ in range(CACHED_IMAGES + 4)]
    for number, png in enumerate(uploads + uploads[:2]):
        path = tmp_path / f"{number}.png"
        path.write_bytes(png)
        x, _ = digits_model.load_images([path])
        body = client.post("/api/explain", files=upload(png), data={"method": "saliency", "target": "1"}).json()
        np.testing.assert_allclose(npy_from(body), METHODS["saliency"](digits_model.network, x, 1)[0].numpy(),
                                   rtol=1e-5, atol=1e-7)
    assert len(client.app.state.served._cache) <= CACHED_IMAGES


def test_classes_are_found_by_name_too(client, digit_png):
    by_name = client.post("/api/explain", files=upload(digit_png), data={"method": "gradcam", "target": "7"})
    assert by_name.json()["target"] == {"index": 7, "name": "7"}


def test_options_reach_the_method(client, digits_model, digit_png, reference_input):
    options = {"patch": 6, "stride": 3}
    body = client.post("/api/explain", files=upload(digit_png),
                       data={"method": "occlusion", "target": "2", "options": '{"patch": 6, "stride": 3}'}).json()
    expected = METHODS["occlusion"](digits_model.network, reference_input, 2, **options)[0].numpy()
    default = METHODS["occlusion"](digits_model.network, reference_input, 2)[0].numpy()
    np.testing.assert_allclose(npy_from(body), expected, rtol=1e-5, atol=1e-7)
    assert not np.allclose(expected, default)
    assert body["options"] == options


@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_pictures_are_render_overlay(client, digits_model, digit_png, reference_input, method):
    """The .png overlay and the page's coloured map are `render.overlay` of the upsampled map, at the method's
    percentile (saliency: 99) and the alpha asked (the page's map: 1, drawn at the slider's opacity)."""
    from cnnlab.explain.base import upsample
    from cnnlab.explain.render import overlay

    picture = torch.from_numpy(np.asarray(Image.open(io.BytesIO(digit_png)), np.float32) / 255)[None]
    on_image = upsample(METHODS[method](digits_model.network, reference_input, 4), (32, 32))[0]
    percentile = METHODS[method].percentile
    answer = client.post("/api/explain", files=upload(digit_png),
                         data={"method": method, "target": "4", "format": "png", "alpha": "0.7"})
    assert answer.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(answer.content))),
                                  overlay(picture, on_image, alpha=0.7, percentile=percentile))
    heat = client.post("/api/explain", files=upload(digit_png), data={"method": method, "target": "4"}).json()["heat"]
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(heat.split(",", 1)[1])))),
                                  overlay(picture, on_image, alpha=1.0, percentile=percentile))


def test_photos_are_turned_upright_as_the_browser_shows_them(client):
    """A phone photo stored sideways with EXIF orientation 6 is read as it is seen: taller than wide."""
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(buffer, format="JPEG", exif=exif)
    answer = client.post("/api/predict", files=upload(buffer.getvalue())).json()
    assert (answer["width"], answer["height"]) == (20, 40)


def test_model_info_lists_every_registered_method_and_the_summary(client, digits_model):
    info = client.get("/api/model").json()
    assert [m["name"] for m in info["methods"]] == list(METHODS)
    assert info["classes"] == [str(i) for i in range(10)] and info["input_shape"] == [1, 16, 16]
    assert "Total params: 2,346" in info["summary"] and info["parameters"] == 2346
    occlusion = next(m for m in info["methods"] if m["name"] == "occlusion")
    assert occlusion["slow"] and occlusion["auto"], "a 16x16 input makes even slow methods quick"
    assert set(occlusion["options"]) == set(METHODS["occlusion"].options)


def test_openapi_page_documents_the_api_offline(client):
    schema = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/explain", "/api/model", "/api/health"} <= set(schema["paths"])
    fields = schema["components"]["schemas"]
    assert any("method" in s.get("properties", {}) for s in fields.values())
    page = client.get("/docs")
    assert page.status_code == 200 and "static/swagger-ui-bundle.js" in page.text and "http" not in page.text
    assert client.get("/static/swagger-ui-bundle.js").status_code == 200


def test_security_headers_on_every_answer(client, digit_png):
    for answer in (client.get("/"), client.get("/api/model"), client.get("/static/app.js"), client.get("/nowhere"),
                   client.post("/api/explain", files=upload(b"no"), data={"method": "gradcam"})):
        policy = answer.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["script-src"] == "'self'" and directives["default-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"


def test_page_has_no_inline_script_and_no_outside_address(client):
    from html.parser import HTMLParser

    class Scripts(HTMLParser):
        inline, sources, handlers, links = [], [], [], []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            self.handlers += [name for name in attrs if name.startswith("on")]
            self.links += [v for k, v in attrs.items() if k in ("src", "href") and "//" in (v or "")]
            if tag == "script":
                self.sources.append(attrs.get("src"))

        def handle_data(self, data):
            if self.lasttag == "script" and data.strip():
                self.inline.append(data)

    for path in ("/", "/docs"):
        parser = Scripts()
        parser.feed(client.get(path).text)
        assert parser.inline == [] and parser.handlers == [] and parser.links == [] and None not in parser.sources
    for asset in ("app.js", "style.css", "docs.js"):
        text = client.get(f"/static/{asset}").text
        assert "http://" not in text and "https://" not in text and "@import" not in text


def test_assets_are_served_by_name_only(client):
    for name in ("__init__.py", "app.py", "..%2Fapp.py", "%2E%2E%2Fserved.py", "index.html"):
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 404, name
        assert answer.json()["detail"].count("\n") == 0


def test_no_file_name_from_the_client_reaches_the_file_system(client, digit_png, tmp_path):
    target = tmp_path / "planted.png"
    answer = client.post("/api/predict", files={"image": (str(target), digit_png, "image/png")})
    assert answer.status_code == 200 and not target.exists() and list(tmp_path.iterdir()) == []


def tall_png_header(width: int, height: int) -> bytes:
    """A valid PNG header claiming `width` x `height` with one tiny data chunk: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


def streamed(size: int):
    """A body sent in chunks with no Content-Length, so only counting can catch it."""
    chunk = b"\0" * 65536
    for _ in range(size // len(chunk)):
        yield chunk


def truncated_png() -> bytes:
    whole = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    return whole[: len(whole) // 2]


def multipart(fields: dict, image: bytes, boundary: str = "cnnlab-test-boundary") -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
                 f"Content-Type: image/png\r\n\r\n".encode() + image + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


ELEVEN_MIB = 11 * 2**20
BAD_REQUESTS = {
    "body over the limit": (413, "larger than the limit", lambda c, png: c.post(
        "/api/predict", files=upload(b"\0" * ELEVEN_MIB))),
    "streamed body over the limit": (413, "larger than the limit", lambda c, png: c.post(
        "/api/predict", content=streamed(ELEVEN_MIB), headers={"content-type": "multipart/form-data; boundary=x"})),
    "a Content-Length over the limit, refused before the body is read": (413, "larger than the limit", lambda c, png:
        c.post("/api/predict", content=b"0123456789", headers={"content-length": str(ELEVEN_MIB),
                                                                "content-type": "multipart/form-data; boundary=x"})),
    "a lying Content-Length": (400, "Content-Length", lambda c, png: c.post(
        "/api/predict", content=b"abc", headers={"content-length": "lots"})),
    "not an image": (415, "not an image", lambda c, png: c.post("/api/predict", files=upload(b"GIF89a? no."))),
    "a truncated image": (415, "truncated or damaged", lambda c, png: c.post(
        "/api/predict", files=upload(truncated_png()))),
    "an empty file": (415, "empty", lambda c, png: c.post("/api/predict", files=upload(b""))),
    "PostScript (Pillow would start Ghostscript)": (415, "not an image", lambda c, png: c.post(
        "/api/predict", files=upload(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"))),
    "a decompression bomb": (400, "pixels", lambda c, png: c.post(
        "/api/predict", files=upload(tall_png_header(20_000, 20_000)))),
    "a bomb sent to explain": (400, "pixels", lambda c, png: c.post(
        "/api/explain", files=upload(tall_png_header(10_000, 6_000)), data={"method": "gradcam"})),
    "an unknown method": (400, "Similar: 'gradcam'", lambda c, png: c.post(
        "/api/explain", files=upload(png), data={"method": "gradcm"})),
    "a class index out of range": (400, "[0, 9]", lambda c, png: c.post(
        "/api/explain", files=upload(png), data={"method": "gradcam", "target": "10"})),
    "an unknown class name": (400, "Unknown class 'seven'", lambda c, png: c.post(
        "/api/explain", files=upload(png), data={"method": "gradcam", "target": "seven"})),
    "an unknown option": (400, "Similar: 'patch'", lambda c, png: c.post(
        "/api/explain", files=upload(png), data={"method": "occlusion", "options": '{"pach": 3}'})),
    "an option below its minimum": (400, "must be >= 1", lambda c, png: c.post(
        "/api/explain", files=upload(png), data={"method": "occlusion", "options": '{"patch": 0}'})),
    "an option of the wrong type": (400, "a number (int)", lambda c, png: c.post(
        "/api/explain", files=upload(png), data={"method": "occlusion", "options": '{"patch": "big"}'})),
    "options the method refuses": (400, "at most the patch size", lambda c, png: c.post(
        "/api/explain", files=upload(png), data={"method": "occlusion", "options": '{"patch": 4, "stride": 9}'})),
    "options that are not JSON": (400, "not JSON", lambda c, png: c.post(
        "/api/explain", files=upload(png), data={"method": "occlusion", "options": "{patch: 4"})),
    "an unknown layer": (400, "Unknown layer", lambda c, png: c.post(
        "/api/explain", files=upload(png), data={"method": "gradcam", "options": '{"layer": "model.99"}'})),
    "an unknown format": (400, "one of json, npy, png", lambda c, png: c.post(
        "/api/explain", files=upload(png), data={"method": "gradcam", "format": "gif"})),
    "no image field": (422, "'image'", lambda c, png: c.post("/api/predict", data={"top": "5"})),
    "a raw body instead of a form": (422, "'image'", lambda c, png: c.post(
        "/api/predict", content=png, headers={"content-type": "image/png"})),
    "a cut-off multipart body": (422, "'image'", lambda c, png: c.post(
        "/api/predict", content=multipart({"top": "5"}, png)[:-30],
        headers={"content-type": "multipart/form-data; boundary=cnnlab-test-boundary"})),
    "top below one": (422, "'top'", lambda c, png: c.post("/api/predict", files=upload(png), data={"top": "0"})),
    "a foreign Host header (DNS rebinding)": (400, "Host header", lambda c, png: c.get(
        "/api/model", headers={"host": "evil.example:8000"})),
    "an unknown path": (404, "Not Found", lambda c, png: c.get("/api/nothing")),
    "a wrong method on a path": (405, "Method Not Allowed", lambda c, png: c.get("/api/predict")),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_bad_input_gets_its_status_and_one_line_and_the_server_goes_on(client, digit_png, name):
    status, phrase, send = BAD_REQUESTS[name]
    answer = send(client, digit_png)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and phrase in detail
    assert "\n" not in detail and 10 < len(detail) < 400 and "Traceback" not in detail
    assert "content-security-policy" in answer.headers
    assert client.get("/api/health").json()["status"] == "ok"
    assert client.post("/api/predict", files=upload(digit_png)).status_code == 200


def test_an_internal_error_is_a_json_500_and_the_server_goes_on(client, digit_png, monkeypatch):
    from cnnlab.explain import registry

    def broken(model, images, target=None):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setitem(registry._METHODS, "broken", registry.Method("broken", broken, "fails", "none"))
    answer = client.post("/api/explain", files=upload(digit_png), data={"method": "broken"})
    assert answer.status_code == 500
    assert answer.json()["detail"] == "Internal error (RuntimeError: boom); the server goes on serving."
    assert client.post("/api/explain", files=upload(digit_png), data={"method": "saliency"}).status_code == 200


def test_an_unknown_class_names_the_nearest_imagenet_names(cat_model, cat_png):
    with TestClient(create_app(cat_model), base_url=BASE) as client:
        answer = client.post("/api/explain", files=upload(cat_png), data={"method": "gradcam",
                                                                          "target": "Egyptian kat"})
        assert answer.status_code == 400
        assert "Similar: 'Egyptian cat'" in answer.json()["detail"]
