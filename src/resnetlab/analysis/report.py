"""A self-contained HTML report: one file, figures embedded as data URIs, no server, no links out
(but to the project's own files, where a report points a reader to them).

The pieces are plain functions that return HTML fragments; an experiment strings them together
(``section(...)``) and ``write_report`` wraps them into a page. Every text goes through
``html.escape``. Every figure carries an alt text that describes it for a reader who cannot see
it (what is plotted and what it shows), not only its caption.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from resnetlab.atomic import write_text

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.table { overflow-x: auto; } table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.verdict { font-weight: 600; }
.claim { border-left: 3px solid #0072b2; padding-left: 0.6em; }
.formula { font: italic 1.15em Georgia, serif; margin: 0.6em 2em; }
"""


class HasAlt(Protocol):
    """A figure's files with their alt text (``resnetlab.analysis.figures.FigureFiles``)."""

    alt: str

    @property
    def png(self) -> Path: ...


def esc(text: object) -> str:
    """``text`` as HTML text."""
    return html.escape(str(text))


def paragraph(text: str) -> str:
    """A paragraph of plain text."""
    return f"<p>{esc(text)}</p>"


def preformatted(text: str) -> str:
    """Text kept as it is (a command line, a table in monospace)."""
    return f"<pre>{esc(text)}</pre>"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML table; cells are shown as given (format numbers before). A table wider than the
    page scrolls inside its own box."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    inner = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="table">{inner}</div>'


def figure(png: str | Path | HasAlt, caption: str, alt: str | None = None) -> str:
    """A PNG embedded as a base64 data URI, with its caption and alt text.

    Args:
        png: the PNG file, or a figure's files with their alt text (``FigureFiles``).
        caption: the caption under the figure.
        alt: what the figure shows, for a reader who cannot see it; by default the alt text of
            ``png``'s figure.

    Raises:
        ValueError: no alt text (a path alone, no ``alt``), or an alt text that only repeats
            the caption.
    """
    if alt is None:
        alt = getattr(png, "alt", None)
    path = getattr(png, "png", png)
    if not alt or alt.strip() == caption.strip():
        raise ValueError(f"the figure {Path(path).name} needs an alt text that describes it")
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def section(heading: str, *parts: str, anchor: str | None = None) -> str:
    """A titled section made of fragments; ``anchor`` is its ``id`` (by default made of the
    heading: ``"1. The problem"`` -> ``"the-problem"``)."""
    anchor = anchor or slug(heading)
    return f'<section id="{esc(anchor)}"><h2>{esc(heading)}</h2>{"".join(parts)}</section>'


def slug(text: str) -> str:
    """``"1. The problem"`` -> ``"the-problem"``: lower case, words joined by hyphens."""
    return "-".join(re.findall(r"[a-z][a-z0-9]*", text.lower())) or "section"


def claim(text: str, name: str) -> str:
    """A sentence generated from this run's numbers (``resnetlab.experiments.claims``), marked
    so that a reader (and a test) finds it: ``<p class="claim" data-claim="name">``."""
    return f'<p class="claim" data-claim="{esc(name)}">{esc(text)}</p>'


def formula(text: str) -> str:
    """An equation on a line of its own (plain text: ``H(x) = F(x) + x``)."""
    return f'<p class="formula">{esc(text)}</p>'


def link(text: str, href: str) -> str:
    """A link (to a file of the project, relative to the page)."""
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def paragraph_html(*pieces: str) -> str:
    """A paragraph made of fragments that are already HTML (text through ``esc``, links)."""
    return f"<p>{''.join(pieces)}</p>"


def environment_section(environment: Mapping[str, object], command: str) -> str:
    """How the numbers were made: the exact command, the machine and the versions."""
    rows = [(key, value) for key, value in environment.items()]
    return section("How this was made", preformatted(command), table(("what", "value"), rows))


def write_report(path: str | Path, title: str, parts: Sequence[str]) -> Path:
    """Write the page atomically.

    Args:
        path: the ``.html`` file.
        title: the page title and top heading.
        parts: HTML fragments in order (sections, paragraphs, tables, figures).

    Returns:
        The path written.
    """
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1>{''.join(parts)}</body></html>\n"
    )
    return write_text(path, page)


def figure_alt(png: str | Path, alt: str, caption: str) -> str:
    """A PNG embedded as a data URI with its own alt text (what the figure shows, for a reader
    who cannot see it) and a caption (what to look for)."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def bullets(items: Sequence[str]) -> str:
    """A list of plain-text items."""
    return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>"
