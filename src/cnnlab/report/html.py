"""The report page: one self-contained HTML file (inline CSS, PNGs as data: URIs, no script, no network).

Small builders return HTML strings; every piece of run-supplied text goes
through `escape`. The layout is one column on a phone and a grid of figures
on wider screens.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from html import escape
from typing import Iterable, Sequence

from PIL import Image

STYLE = """
:root { --ink: #1d2329; --muted: #5b6670; --line: #d8dde2; --panel: #f6f8fa; --accent: #1f6feb; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: #fff; }
header, main, footer { max-width: 1180px; margin: 0 auto; padding: 0 16px; }
header { padding-top: 20px; }
h1 { font-size: 1.55rem; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 1.25rem; margin: 36px 0 8px; padding-top: 8px; border-top: 2px solid var(--line); }
h3 { font-size: 1.02rem; margin: 22px 0 6px; }
p { margin: 6px 0 10px; }
.lead, .note, figcaption { color: var(--muted); }
.note { font-size: 0.9rem; }
code { font: 0.88em/1.4 ui-monospace, "DejaVu Sans Mono", monospace; background: var(--panel); padding: 1px 4px;
       border-radius: 4px; word-break: break-all; }
nav { display: flex; flex-wrap: wrap; gap: 6px 8px; margin: 12px 0 4px; }
nav a { color: var(--accent); text-decoration: none; border: 1px solid var(--line); border-radius: 999px;
        padding: 2px 12px; font-size: 0.9rem; white-space: nowrap; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px; margin: 14px 0; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; }
.card b { display: block; font-size: 1.3rem; }
.card span { color: var(--muted); font-size: 0.85rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 14px 18px;
        align-items: start; }
.grid.wide { grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); }
.split { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 18px; align-items: start; }
figure { margin: 8px 0; min-width: 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px;
             background: #fff; }
figure.pixel img { image-rendering: pixelated; }
figcaption { font-size: 0.86rem; margin-top: 4px; }
.losses { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 12px; }
.loss { border: 1px solid var(--line); border-radius: 8px; padding: 8px; background: var(--panel); }
.loss figure { margin: 0 0 6px; }
.loss img { width: 100%; image-rendering: pixelated; }
.loss .labels { font-size: 0.9rem; }
figure.strip img { width: 100%; image-rendering: pixelated; }
figure.strip .labels { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); text-align: center;
                       font-size: 0.8rem; color: var(--muted); }
.wrong { color: #b42318; font-weight: 600; }
.right { color: #067647; font-weight: 600; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; max-width: 100%; }
.scroll.tall { max-height: 560px; overflow-y: auto; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 6px 0 12px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
table.settings td:last-child { overflow-wrap: anywhere; }
th { background: var(--panel); position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: 600; border-top: 2px solid var(--line); }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--accent); }
footer { color: var(--muted); font-size: 0.85rem; margin-top: 40px; padding-bottom: 28px; }
@media (max-width: 760px) {
  body { font-size: 14px; }
  .split { grid-template-columns: minmax(0, 1fr); }
  .grid, .grid.wide { grid-template-columns: minmax(0, 1fr); }
  .losses { grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px; }
  .loss { padding: 5px; }
  .loss .labels { font-size: 0.8rem; }
  th, td { padding: 4px 6px; }
  h2 { margin-top: 28px; }
}
"""


@dataclass
class Picture:
    """A PNG the page shows and the report also writes to disk under `name`."""

    name: str
    data: bytes
    alt: str

    @property
    def size(self) -> tuple[int, int]:
        return Image.open(io.BytesIO(self.data)).size

    def uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.data).decode("ascii")


def img(picture: Picture) -> str:
    width, height = picture.size
    return f'<img src="{picture.uri()}" alt="{escape(picture.alt)}" width="{width}" height="{height}">'


def figure(picture: Picture, caption: str = "", css_class: str = "") -> str:
    """An image with an optional caption (`caption` is HTML: escape run text before passing it)."""
    caption_html = f"<figcaption>{caption}</figcaption>" if caption else ""
    klass = f' class="{css_class}"' if css_class else ""
    return f"<figure{klass}>{img(picture)}{caption_html}</figure>"


def grid(items: Iterable[str], wide: bool = False) -> str:
    return f'<div class="grid{" wide" if wide else ""}">' + "".join(items) + "</div>"


def table(headers: Sequence[str], rows: Iterable[Sequence], numeric: Sequence[int] = (),
          total_rows: int = 0, tall: bool = False, css_class: str = "") -> str:
    """A table of escaped cells; columns in `numeric` are right-aligned; the last `total_rows` rows are bold."""
    rows = list(rows)
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{escape(str(h))}</th>' for i, h in enumerate(headers))
    body = []
    for index, row in enumerate(rows):
        total = ' class="total"' if index >= len(rows) - total_rows else ""
        cells = "".join(f'<td{" class=num" if i in numeric else ""}>{escape(str(c))}</td>' for i, c in enumerate(row))
        body.append(f"<tr{total}>{cells}</tr>")
    klass = f' class="{css_class}"' if css_class else ""
    return (f'<div class="scroll{" tall" if tall else ""}"><table{klass}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def cards(items: Sequence[tuple[str, str]]) -> str:
    """Big numbers with a label under each: (value, label) pairs."""
    return '<div class="cards">' + "".join(f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>'
                                           for v, k in items) + "</div>"


def section(anchor: str, title: str, body: str, lead: str = "") -> str:
    intro = f'<p class="lead">{lead}</p>' if lead else ""
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{intro}{body}</section>'


def page(title: str, heading: str, subtitle: str, sections: Sequence[tuple[str, str, str]], footer: str) -> str:
    """The whole document; `sections` are (anchor, nav label, HTML) triples."""
    nav = "".join(f'<a href="#{anchor}">{escape(label)}</a>' for anchor, label, _ in sections)
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f'<header><h1>{escape(heading)}</h1><p class="lead">{subtitle}</p><nav>{nav}</nav></header>'
            "<main>" + "".join(body for _, _, body in sections) + "</main>"
            f"<footer>{footer}</footer></body></html>\n")
