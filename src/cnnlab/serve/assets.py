"""The page's files, read once from the package into memory and served by name from a fixed list.

A request names an asset; it never names a file: an unknown name is a 404,
and no part of the URL is ever joined to a path. Swagger UI's script and
style come from the `fastapi_offline` package, so the API's docs page works
offline too.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

PAGE_ASSETS = {"app.js": "text/javascript", "style.css": "text/css", "docs.js": "text/javascript",
               "favicon.svg": "image/svg+xml"}
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}
PAGES = ("index.html", "docs.html")


@lru_cache(maxsize=None)
def page(name: str) -> bytes:
    """index.html or docs.html."""
    if name not in PAGES:
        raise KeyError(name)
    return (resources.files("cnnlab.serve") / "static" / name).read_bytes()


@lru_cache(maxsize=None)
def asset(name: str) -> tuple[bytes, str]:
    """The bytes and media type of a page or docs asset; KeyError for any other name."""
    if name in PAGE_ASSETS:
        return (resources.files("cnnlab.serve") / "static" / name).read_bytes(), PAGE_ASSETS[name]
    if name in DOCS_ASSETS:
        return (resources.files("fastapi_offline") / "static" / name).read_bytes(), DOCS_ASSETS[name]
    raise KeyError(name)
