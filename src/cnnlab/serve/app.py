"""`create_app`: the web page and its JSON API for one model, a FastAPI app behind the guards of `guard.py`.

    app = create_app("pretrained:efficientnet_lite0")          # loopback only, no token
    app = create_app("runs/digits", token="s3cret-token")       # every request must carry the token

Endpoints: ``GET /`` the page, ``GET /api/model``, ``POST /api/predict``,
``POST /api/explain``, ``GET /api/health``, and ``GET /docs`` (the OpenAPI
page). Every error is JSON ``{"detail": one line}``; the server keeps serving
after each.
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from cnnlab import __version__
from cnnlab.errors import CnnlabError, ConfigError, invalid
from cnnlab.run import LoadedModel, load_model
from cnnlab.serve.assets import asset, page
from cnnlab.serve.guard import LOOPBACK_HOSTS, MAX_BODY, BodyLimit, Gate, SecurityHeaders, refuse
from cnnlab.serve.images import MAX_PIXELS, NotAnImage, TooManyPixels, open_image
from cnnlab.serve.schemas import Explanation, Health, ModelInfo, Prediction, Problem
from cnnlab.serve.served import ServedModel
from cnnlab.serve.work import Busy, WorkQueue

log = logging.getLogger("cnnlab.serve")
ERRORS = {400: {"model": Problem, "description": "bad input: the one-line detail says what and what is expected"},
          413: {"model": Problem, "description": "the body is over the size limit"},
          415: {"model": Problem, "description": "the upload is not an image"},
          503: {"model": Problem, "description": "the work queue is full; retry after Retry-After seconds"}}
DESCRIPTION = """See what a CNN sees. Send an image as the multipart field `image`.

`/api/predict` gives the top classes; `/api/explain` gives one registered method's map for one class, as JSON
(raw map as base64 .npy, coloured map as PNG), or as a raw `.npy` or overlay `.png` (`format`). The work runs on
one model, one job at a time, behind a bounded queue: when it is full the answer is 503 with `Retry-After`.
Errors are JSON `{"detail": "one line"}`."""


def create_app(model: str | os.PathLike | LoadedModel, *, token: str | None = None, device: str = "auto",
               queue: int = 16, max_body: int = MAX_BODY, max_pixels: int = MAX_PIXELS,
               allowed_hosts=None) -> FastAPI:
    """The app serving `model` (a run directory, ``pretrained:NAME`` or a `LoadedModel`, loaded onto `device`).

    `token`: when set, every request must carry it. `allowed_hosts`: the
    Host header names accepted; by default the loopback names when there is
    no token (so a page elsewhere cannot reach this one by DNS rebinding) and
    any with a token. `queue`: requests that may wait for the model before
    the answer is 503. `max_body`: bytes per request (413 above).
    `max_pixels`: the decoded image's budget (400 above).
    """
    if queue < 0:
        raise ConfigError(invalid("queue length", "cnnlab serve", "an integer >= 0", queue))
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    served = ServedModel(loaded, max_pixels, max_body)
    work = WorkQueue(queue)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        work.close()

    app = FastAPI(title="cnnlab serve", version=__version__, description=DESCRIPTION, docs_url=None, redoc_url=None,
                  lifespan=lifespan)
    app.state.served, app.state.work = served, work
    _add_error_handlers(app)
    _add_pages(app)

    @app.get("/api/model", response_model=ModelInfo, summary="The model: classes, input shape, methods, summary")
    async def model_info() -> dict:
        return served.info

    @app.get("/api/health", response_model=Health, summary="Whether the server answers, and its queue")
    async def health() -> dict:
        return {"status": "ok", **work.stats()}

    @app.post("/api/predict", response_model=Prediction, responses=ERRORS, summary="Top classes of an image")
    async def predict(image: UploadFile = File(description="the image: PNG, JPEG, WebP, GIF or BMP"),
                      top: int = Form(5, ge=1, description="how many classes")) -> dict:
        data = await _upload(image, served)
        return await work.run(served.predict, data, top)

    @app.post("/api/explain", response_model=Explanation, responses={
        **ERRORS, 200: {"content": {"application/json": {}, "application/octet-stream": {}, "image/png": {}},
                        "description": "JSON, or the raw map (.npy) or the overlay (.png) by `format`"}},
        summary="One method's map of an image for one class")
    async def explain(image: UploadFile = File(description="the image: PNG, JPEG, WebP, GIF or BMP"),
                      method: str = Form(description="a registered method: see /api/model"),
                      target: str | None = Form(None, description="class index or name (default: the predicted)"),
                      options: str | None = Form(None, description='JSON object of the method\'s options, e.g. '
                                                 '{"patch": 8, "stride": 4}'),
                      format: str = Form("json", description="json, npy (raw float32 map) or png (overlay)"),
                      alpha: float = Form(0.5, description="opacity of the map in the png overlay")):
        request = served.checked_request(method, target, options, format, alpha)
        data = await _upload(image, served)
        result = await work.run(served.explain, data, request)
        if request.format == "npy":
            return Response(result, media_type="application/octet-stream")
        if request.format == "png":
            return Response(result, media_type="image/png")
        return result

    # Added innermost first: headers on every answer, then host and token, then the body limit, then the
    # catch-all that turns an unexpected error into a JSON 500 inside the guards.
    app.add_middleware(Unexpected)
    app.add_middleware(BodyLimit, limit=max_body)
    app.add_middleware(Gate, token=token, allowed_hosts=LOOPBACK_HOSTS if allowed_hosts is None and token is None
                       else allowed_hosts)
    app.add_middleware(SecurityHeaders)
    return app


class Unexpected:
    """A bug answers a JSON 500 with one line (and is logged whole); the server goes on serving."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as error:
            log.exception("cnnlab serve: %s %s failed", scope["method"], scope["path"])
            if not started:
                first = (str(error).splitlines() or [""])[0][:200]
                await refuse(send, 500, f"Internal error ({error.__class__.__name__}: {first}); the server goes on "
                                        f"serving.")


async def _upload(image: UploadFile, served: ServedModel) -> bytes:
    """The upload's bytes, its header checked (format, pixel budget) before it takes a place in the queue."""
    data = await image.read()
    if not data:
        raise NotAnImage("The 'image' field is empty; send the image's bytes.")
    open_image(data, served.max_pixels)
    return data


def _add_pages(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page("index.html"), media_type="text/html; charset=utf-8")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return Response(page("docs.html"), media_type="text/html; charset=utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        try:
            body, media_type = asset(name)
        except KeyError:
            raise HTTPException(404, f"No asset {name!r} on this server.") from None
        return Response(body, media_type=media_type, headers={"cache-control": "no-cache"})


def _add_error_handlers(app: FastAPI) -> None:
    def problem(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"detail": " ".join(str(detail).split())}, status, headers)

    @app.exception_handler(NotAnImage)
    async def not_an_image(request: Request, error: NotAnImage):
        return problem(415, str(error))

    @app.exception_handler(TooManyPixels)
    async def too_many_pixels(request: Request, error: TooManyPixels):
        return problem(400, str(error))

    @app.exception_handler(CnnlabError)
    async def bad_input(request: Request, error: CnnlabError):
        return problem(400, str(error))

    @app.exception_handler(Busy)
    async def busy(request: Request, error: Busy):
        return problem(503, str(error), {"retry-after": str(error.retry_after)})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or str(first["loc"][0])
        return problem(422, f"The {first['loc'][0]} field {where!r} is wrong: {first['msg']}. "
                            f"See /docs for the fields.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        detail = error.detail
        if error.status_code == 404 and detail == "Not Found":
            detail = f"Not Found: nothing at {request.url.path}; the API is listed at /docs."
        elif error.status_code == 405:
            detail = f"Method Not Allowed: {request.method} {request.url.path}; see /docs for what it takes."
        return problem(error.status_code, detail, getattr(error, "headers", None))
