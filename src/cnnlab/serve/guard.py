"""The server's defences, as ASGI middleware around the app: security headers, host and token, body size.

From the outside in: `SecurityHeaders` (every answer, refusals included),
`Gate` (the Host header when no token is set, against DNS rebinding; the token
when one is), then `BodyLimit` (413 past the limit, counted as the bytes
arrive, whatever Content-Length claims). Every refusal is JSON with a one-line
``detail``, like the app's own errors.
"""

from __future__ import annotations

import hmac
import json
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, urlencode

TOKEN_COOKIE = "cnnlab_token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_BODY = 10 * 1024 * 1024
# No inline script anywhere; the page draws with CSSOM (allowed) and images come as data: or blob: URLs.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
               "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Swagger UI sets style attributes as it renders; its script still comes from this server only.
DOCS_POLICY = PAGE_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin"),
           (b"cross-origin-resource-policy", b"same-origin"),
           (b"permissions-policy", b"camera=(), microphone=(), geolocation=()")]


async def refuse(send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Answer with a JSON error {"detail": one line} and nothing else."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Adds the content security policy, nosniff, no framing and no caching of API answers to every response."""

    def __init__(self, app, docs_paths: tuple[str, ...] = ("/docs",)):
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        policy = DOCS_POLICY if path in self.docs_paths else PAGE_POLICY
        extra = [(b"content-security-policy", policy.encode()), *HEADERS]
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Gate:
    """Lets a request in only with the right Host (no token set) or the token (set).

    The token may come as ``Authorization: Bearer T``, the ``cnnlab_token``
    cookie, or ``?token=T``; opening the page with ``?token=T`` sets the
    cookie (HttpOnly, SameSite=Strict) and drops the token from the address.
    """

    def __init__(self, app, token: str | None = None, allowed_hosts=LOOPBACK_HOSTS):
        self.app = app
        self.token = token
        self.allowed_hosts = None if allowed_hosts is None else frozenset(allowed_hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        if self.allowed_hosts is not None:
            host = _hostname(headers.get("host", ""))
            if host not in self.allowed_hosts:
                return await refuse(send, 400, f"The Host header {host!r} is not this server's; open it as "
                                    f"http://127.0.0.1:PORT/ (names allowed: {', '.join(sorted(self.allowed_hosts))}).")
        if self.token is None:
            return await self.app(scope, receive, send)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        from_query = next((value for name, value in query if name == "token"), None)
        offered = [_bearer(headers.get("authorization", "")), _cookie(headers.get("cookie", ""), TOKEN_COOKIE),
                   from_query]
        if not any(value is not None and hmac.compare_digest(value.encode(), self.token.encode())
                   for value in offered):
            return await refuse(send, 401, "This server needs its token: open the address it printed (ending in "
                                "?token=...) or send the header 'Authorization: Bearer TOKEN'.",
                                [(b"www-authenticate", b"Bearer")])
        if from_query is not None and scope["method"] == "GET" and scope["path"] == "/":
            rest = urlencode([(name, value) for name, value in query if name != "token"])
            location = scope.get("root_path", "") + "/" + (f"?{rest}" if rest else "")
            cookie = f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                                    (b"content-length", b"0")]})
            return await send({"type": "http.response.body", "body": b""})
        await self.app(scope, receive, send)


class TooLarge(Exception):
    """The body passed the limit while it was being read."""


class BodyLimit:
    """413 for a body over `limit` bytes: at once when Content-Length says so, else as soon as the count passes."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"The request body is larger than the limit of {self.limit / 2 ** 20:g} MiB; send a smaller image."
        length = _headers(scope).get("content-length")
        if length is not None:
            if not length.isdigit():
                return await refuse(send, 400, f"The Content-Length header {length!r} is not a number of bytes.")
            if int(length) > self.limit:
                return await refuse(send, 413, message)
        received = 0
        exceeded = False
        responded = False

        async def counted_receive():
            nonlocal received, exceeded
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise TooLarge
            return event

        async def guarded_send(event):
            nonlocal responded
            if exceeded:  # the app saw a broken body; whatever it answers, the answer is 413
                if not responded:
                    responded = True
                    await refuse(send, 413, message)
                return
            responded = responded or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except TooLarge:
            if not responded:
                await refuse(send, 413, message)
        except Exception:
            if not exceeded:
                raise
            if not responded:
                await refuse(send, 413, message)


def _headers(scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


def _hostname(host: str) -> str:
    """'127.0.0.1:8000' -> '127.0.0.1', '[::1]:8000' -> '::1'."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _bearer(value: str) -> str | None:
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _cookie(header: str, name: str) -> str | None:
    cookies = SimpleCookie()
    try:
        cookies.load(header)
    except CookieError:  # a malformed Cookie header is no token, not a crash
        return None
    return cookies[name].value if name in cookies else None
