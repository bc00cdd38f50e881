"""The page's files ship as package data, so a non-editable install serves the same page offline."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

from cnnlab.serve import assets

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "cnnlab" / "serve" / "static"


def test_every_asset_the_server_names_is_package_data():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = declared["cnnlab.serve"]
    shipped = {path.name for path in STATIC.iterdir()}
    assert all(path.is_file() for path in STATIC.iterdir()), "package-data's static/* takes no folders"
    for name in [*assets.PAGE_ASSETS, *assets.PAGES]:
        assert name in shipped and any(fnmatch(f"static/{name}", p) for p in patterns), name
    for name in [*assets.PAGE_ASSETS, *assets.DOCS_ASSETS]:
        assert assets.asset(name)[0], name
