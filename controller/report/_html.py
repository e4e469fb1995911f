"""Small pieces of a self-contained HTML page: escaped text, tables, inline images.

Every value is HTML-escaped (``html.escape`` with quotes) unless it is a
:class:`Safe` fragment built here; images are inline ``data:`` URIs, the
style sheet is inline: the page loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence


class Safe(str):
    """HTML that is already escaped (built by the helpers of this module)."""


Cell = object  # any value: str() and escaped, unless Safe


def esc(value: Cell) -> Safe:
    """``value`` as escaped HTML text (a Safe fragment passes through)."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def tag(name: str, content: Cell = "", **attrs: str) -> Safe:
    """``<name attrs>content</name>``; attribute values are escaped, ``class_`` is ``class``."""
    shown = "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    return Safe(f"<{name}{shown}>{esc(content)}</{name}>")


def join(parts: Iterable[Cell], sep: str = "") -> Safe:
    """Escaped parts joined into one fragment."""
    return Safe(sep.join(esc(p) for p in parts))


def table(headers: Sequence[Cell], rows: Iterable[Sequence[Cell]], *, id_: str = "",
          row_classes: Sequence[str] | None = None, numeric: Sequence[int] = ()) -> Safe:
    """A table with a header row; ``numeric`` column indexes are right-aligned."""
    head = join(tag("th", h) for h in headers)
    body = []
    for index, row in enumerate(rows):
        cells = join(tag("td", c, class_="num") if i in numeric else tag("td", c)
                     for i, c in enumerate(row))
        klass = row_classes[index] if row_classes else ""
        body.append(tag("tr", cells, class_=klass) if klass else tag("tr", cells))
    attrs = {"id": id_} if id_ else {}
    return tag("table", join([tag("thead", tag("tr", head)), tag("tbody", join(body))]), **attrs)


def key_values(pairs: Iterable[tuple[Cell, Cell]]) -> Safe:
    """A two-column table of names and values."""
    return tag("table", join(tag("tr", join([tag("th", k), tag("td", v)])) for k, v in pairs),
               class_="kv")


def png(data: bytes, alt: str) -> Safe:
    """An inline PNG image."""
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return Safe(f'<img src="{uri}" alt="{esc(alt)}">')


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1.5em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .6em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }
thead th { background: #f3f3f3; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { background: #f7f7f7; white-space: nowrap; }
tr.infeasible td { color: #b00; }
code, .arch { font: 12px ui-monospace, monospace; word-break: break-all; }
code.cmd { user-select: all; background: #f4f4f4; padding: 1px 4px; white-space: nowrap; }
img { max-width: 100%; border: 1px solid #eee; }
.note { color: #555; font-size: 13px; }
"""


def page(title: str, body: Iterable[Cell]) -> str:
    """A whole HTML document."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(esc(part) for part in body)
        + "\n</body></html>\n"
    )
