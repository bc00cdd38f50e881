"""Deliberate bugs in `cnnlab serve`; each must make a test fail (see tools/mutate.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mutate import Mutant  # noqa: E402

GUARD = "src/cnnlab/serve/guard.py"
SERVED = "src/cnnlab/serve/served.py"
IMAGES = "src/cnnlab/serve/images.py"
WORK = "src/cnnlab/serve/work.py"
APP = "src/cnnlab/serve/app.py"
PAGE = "src/cnnlab/serve/static/app.js"
API = "tests/serve/test_api.py"
GUARDS = "tests/serve/test_guard.py"
BROWSER = "tests/serve/test_browser.py"

MUTANTS = [
    Mutant(GUARD, "        if not any(value is not None and hmac.compare_digest(",
           "        if False and any(value is not None and hmac.compare_digest(", GUARDS,
           "with a token set, a request without it is refused"),
    Mutant(GUARD, "hmac.compare_digest(value.encode(), self.token.encode())", "True", GUARDS,
           "a wrong token is refused"),
    Mutant(GUARD, 'cookie = f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"',
           'cookie = f"{TOKEN_COOKIE}={self.token}; Path=/"', GUARDS,
           "the token cookie is out of the page's scripts' reach and never sent by other sites"),
    Mutant(GUARD, "            if host not in self.allowed_hosts:", "            if False:", GUARDS,
           "without a token only loopback Host names are served (DNS rebinding)"),
    Mutant(GUARD, "            if int(length) > self.limit:", "            if False:", f"{API} -k limit",
           "a body whose Content-Length is over the limit is refused with 413 before it is read"),
    Mutant(GUARD, "                if received > self.limit:", "                if False:",
           f"{API} -k limit", "a streamed body is counted and refused with 413 once past the limit"),
    Mutant(GUARD, '        extra = [(b"content-security-policy", policy.encode()), *HEADERS]',
           "        extra = [*HEADERS]", f"{API} -k security_headers",
           "every answer carries the content security policy"),
    Mutant(GUARD, "PAGE_POLICY = (\"default-src 'none'; script-src 'self';",
           "PAGE_POLICY = (\"default-src 'none'; script-src 'self' 'unsafe-inline';", f"{API} -k security_headers",
           "the policy allows no inline script"),
    Mutant(GUARD, "HEADERS = [(b\"x-content-type-options\", b\"nosniff\"), ", "HEADERS = [",
           f"{API} -k security_headers", "answers are never content-sniffed"),
    Mutant(WORK, "            if self._admitted >= self.capacity:", "            if False:",
           f"{GUARDS} -k queue tests/serve/test_work.py", "a full queue answers 503 instead of holding more work"),
    Mutant(WORK, "        future.add_done_callback(self._release)\n        return await asyncio.wrap_future(future)",
           "        try:\n            return await asyncio.wrap_future(future)\n        finally:\n"
           "            self._release(future)", "tests/serve/test_work.py",
           "a client that hangs up keeps its place until its job ends"),
    Mutant(APP, '        return problem(503, str(error), {"retry-after": str(error.retry_after)})',
           "        return problem(503, str(error))", f"{GUARDS} -k queue", "503 says when to retry"),
    Mutant(APP, "        except Exception as error:", "        except ZeroDivisionError as error:",
           f"{API} -k internal_error", "a bug answers a JSON 500 with one line and the server goes on"),
    Mutant(SERVED, "maps = request.method(self.network, image.model_input.clone(), target, **request.options)",
           "maps = request.method(self.network, image.model_input.clone(), None, **request.options)",
           f"{API} -k registry_call", "the map is of the class asked, not the predicted one"),
    Mutant(SERVED, "maps = request.method(self.network, image.model_input.clone(), target, **request.options)",
           "maps = request.method(self.network, image.model_input.clone(), target)", f"{API} -k options_reach",
           "the options sent (occlusion patch and stride) reach the method"),
    Mutant(SERVED, "        key = hashlib.sha256(data).digest()", '        key = b""', f"{API} -k own_maps",
           "each upload is explained, not the one decoded before it"),
    Mutant(SERVED, "heat = overlay(image.shown, on_image, alpha=1.0, percentile=request.method.percentile)",
           "heat = overlay(image.shown, on_image, alpha=1.0)", f"{API} -k render_overlay",
           "the page's map is coloured to the method's percentile, as cnnlab explain draws it"),
    Mutant(SERVED, '"auto": small or not method.slow,', '"auto": True,', f"{BROWSER} -k cat",
           "slow methods on a large input wait for the user to ask"),
    Mutant(IMAGES, "    if width * height > max_pixels:", "    if False:", f"{API} -k bomb",
           "an image whose header claims more pixels than the budget is refused before it is decoded"),
    Mutant(IMAGES, "image = Image.open(io.BytesIO(data), formats=FORMATS)", "image = Image.open(io.BytesIO(data))",
           f"{API} -k PostScript", "only a few raster formats are opened (no EPS, which runs Ghostscript)"),
    Mutant(IMAGES, "            image = ImageOps.exif_transpose(image)\n", "", f"{API} -k upright",
           "photos are read upright, as the browser shows them"),
    Mutant("src/cnnlab/serve/server.py", "    if token is None and not is_loopback(host):", "    if False:",
           "tests/serve/test_cli.py -k beyond_loopback", "any address beyond loopback gets a generated token"),
    Mutant(PAGE, "const fields = { method: this.method.name, target: String(state.target) };",
           "const fields = { method: this.method.name };", f"{BROWSER} -k digit",
           "the page explains the class the user picked"),
    Mutant(PAGE, '    context.globalAlpha = Number($("opacity").value);', "    context.globalAlpha = 0.5;",
           f"{BROWSER} -k digit", "the .png download is the overlay as shown, at the slider's opacity"),
    Mutant(PAGE, '    document.documentElement.style.setProperty("--opacity", slider.value);', "",
           f"{BROWSER} -k digit", "the opacity slider sets how strongly every map covers its image"),
    Mutant(PAGE, "    this.npy.href = this.npyUrl;\n", "", f"{BROWSER} -k digit",
           "the page's .npy link downloads the raw map"),
]
