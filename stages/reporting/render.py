"""Report blocks -> one self-contained HTML page and its markdown twin (figures as files beside it).

A block is a tuple whose first item names its kind:
("h1"|"h2"|"h3", text), ("p", text), ("list", [text]), ("table", header, rows),
("details", summary, header, rows): a table folded away in the HTML (long listings: parameters),
("img", name, png bytes, caption).
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

Block = tuple[Any, ...]
STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}img{max-width:100%}"
         ".wide{overflow-x:auto}summary{cursor:pointer;margin:6px 0}details td{text-align:left}")


def table_text(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with aligned columns (summary.txt, the terminal)."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(r: list[str]) -> str:
        return "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _html_table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<div class='wide'><table><tr>{head}</tr>{body}</table></div>"


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(c: Any) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")
    return "\n".join(["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header),
                      *["| " + " | ".join(map(cell, r)) + " |" for r in rows]])


def _one(block: Block, out: Path) -> tuple[str, str]:
    kind, *rest = block
    if kind in ("h1", "h2", "h3"):
        return f"<{kind}>{html.escape(rest[0])}</{kind}>", "#" * int(kind[1]) + " " + rest[0]
    if kind == "p":
        return f"<p>{html.escape(rest[0])}</p>", rest[0]
    if kind == "list":
        return ("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in rest[0]) + "</ul>",
                "\n".join(f"- {x}" for x in rest[0]))
    if kind == "table":
        return _html_table(*rest), _md_table(*rest)
    if kind == "details":
        summary, header, rows = rest
        return (f"<details><summary>{html.escape(summary)}</summary>{_html_table(header, rows)}</details>",
                f"**{summary}**\n\n{_md_table(header, rows)}")
    if kind == "img":
        name, png, caption = rest
        (out / "figures").mkdir(exist_ok=True)
        (out / "figures" / f"{name}.png").write_bytes(png)
        uri = "data:image/png;base64," + base64.b64encode(png).decode()
        return (f'<figure><img src="{uri}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}'
                f"</figcaption></figure>", f"![{caption}](figures/{name}.png)")
    raise ValueError(f"unknown report block kind {kind!r}")


def render(blocks: list[Block], out: Path, title: str) -> tuple[str, str]:
    """(html, markdown); figures are inlined in the HTML and written to out/figures/ for the markdown."""
    parts = [_one(b, out) for b in blocks]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(h for h, _ in parts)}</body></html>")
    return page, "\n\n".join(md for _, md in parts) + "\n"
