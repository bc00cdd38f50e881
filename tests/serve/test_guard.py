"""The defences: a token on every request when one is set, the Host check without one, and the bounded queue
(503 with Retry-After when full, places freed only when the work ends)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import httpx
import pytest
import torch
from starlette.testclient import TestClient
from torch import nn

from cnnlab.serve import create_app

TOKEN = "tok-3f9a1c0d7e"
PATHS = ("/", "/api/model", "/api/health", "/static/app.js", "/docs", "/openapi.json")


@pytest.fixture(scope="module")
def token_app(digits_model):
    return create_app(digits_model, token=TOKEN)


def client_for(app, host: str = "http://192.168.1.7:8000") -> TestClient:
    """A client from another machine's point of view: with a token, any Host is accepted."""
    return TestClient(app, base_url=host)


@pytest.mark.parametrize("path", PATHS)
def test_every_path_needs_the_token(token_app, path):
    with client_for(token_app) as client:
        answer = client.get(path)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "token" in answer.json()["detail"] and "\n" not in answer.json()["detail"]
        assert client.get(path, headers={"authorization": "Bearer wrong-token-00"}).status_code == 401
        assert client.get(path, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_uploads_need_the_token_too(token_app, digit_png):
    with client_for(token_app) as client:
        files = {"image": ("d.png", digit_png, "image/png")}
        assert client.post("/api/predict", files=files).status_code == 401
        answer = client.post("/api/predict", files=files, headers={"authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200 and len(answer.json()["top"]) == 5


def test_the_printed_address_sets_a_cookie_and_drops_the_token(token_app):
    with client_for(token_app, "http://127.0.0.1:8000") as client:
        answer = client.get(f"/?token={TOKEN}", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"cnnlab_token={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.get("/api/model").status_code == 200, "the cookie carries the token"
    with client_for(token_app) as client:
        assert client.get(f"/api/model?token={TOKEN}").status_code == 200
        assert client.get("/api/model?token=nope-nope-nope").status_code == 401


def test_without_a_token_only_loopback_names_are_served(digits_model):
    with TestClient(create_app(digits_model), base_url="http://127.0.0.1:8000") as client:
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost"):
            assert client.get("/api/health", headers={"host": host}).status_code == 200, host
        for host in ("attacker.example:8000", "127.0.0.1.attacker.example", "10.0.0.5:8000", ""):
            answer = client.get("/api/health", headers={"host": host})
            assert answer.status_code == 400 and "Host header" in answer.json()["detail"], host


class Held(nn.Module):
    """A model whose forward waits, once `hold` is set, until `release` is: work that takes as long as a test
    wants, without any sleep."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.hold = threading.Event()
        self.release = threading.Event()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hold.is_set():
            self.release.wait(60)
        return self.model(x)


def test_a_full_queue_answers_503_with_retry_after_and_recovers(digits_model, digit_png):
    held = Held(digits_model.model)
    app = create_app(dataclasses.replace(digits_model, model=held), queue=1)
    files = {"image": ("d.png", digit_png, "image/png")}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            held.hold.set()
            running = asyncio.create_task(client.post("/api/predict", files=files))
            waiting = asyncio.create_task(client.post("/api/explain", files=files, data={"method": "gradcam"}))
            for _ in range(2000):
                if (await client.get("/api/health")).json() == {"status": "ok", "running": 1, "waiting": 1,
                                                                 "capacity": 2}:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the two requests never took their places")
            refused = await asyncio.wait_for(client.post("/api/predict", files=files), 10)
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert "busy" in refused.json()["detail"] and "\n" not in refused.json()["detail"]
            held.release.set()
            assert (await running).status_code == 200 and (await waiting).status_code == 200
            assert (await client.get("/api/health")).json()["waiting"] == 0
            held.hold.clear()
            assert (await client.post("/api/predict", files=files)).status_code == 200

    try:
        asyncio.run(scenario())
    finally:
        held.release.set()
        app.state.work.close()
