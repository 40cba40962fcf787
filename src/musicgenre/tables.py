"""Markdown tables and counted nouns for reports and summaries: one formatter, so that every table is written alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """A Markdown table, without a trailing newline; `align` holds one 'l' or 'r' per column
    (left when not given)."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align.ljust(len(header), "l")) + "|"
    lines = ["| " + " | ".join(row) + " |" for row in [header, *rows]]
    return "\n".join([lines[0], rule, *lines[1:]])


def plural(n: int, noun: str) -> str:
    """'1 epoch', '2 epochs'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
