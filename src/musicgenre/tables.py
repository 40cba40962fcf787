"""Markdown tables, counted nouns and setting differences for reports, summaries and messages: one formatter
each, so that every one is written alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """A Markdown table, without a trailing newline; `align` holds one 'l' or 'r' per column
    (left when not given). A '|' inside a cell (a genre named after a folder 'r|b') is escaped."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align.ljust(len(header), "l")) + "|"
    lines = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in [header, *rows]]
    return "\n".join([lines[0], rule, *lines[1:]])


def plus_minus(mean: float, std: float | None, fmt: str = ".3f", scale: float = 1.0, unit: str = "") -> str:
    """'0.611 ± 0.012', or with scale 100 and unit '%' '61.1% ± 1.2'; the mean alone where there is no
    spread (one seed)."""
    text = f"{scale * mean:{fmt}}{unit}"
    return text if std is None else f"{text} ± {scale * std:{fmt}}"


def plural(n: int, noun: str) -> str:
    """'1 epoch', '2 epochs'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def percent(share: float) -> str:
    """A share as a whole percentage, '55%', except that a share above nothing is not '0%' ('0.4%', '0.01%') and
    one short of everything is not '100%' ('99.6%')."""
    text = f"{share:.0%}"
    if text in ("0%", "100%") and 0 < share < 1:
        text = f"{100 * share:.2g}%" if share < 0.5 else f"{100 * share:.4g}%"
    return text


def differences(old: dict, new: dict) -> str:
    """The settings that differ between a saved configuration and the one asked for, each as 'epochs 1, not 2'
    (the saved value first), in the order of the new one's keys, then those only the saved one has."""
    keys = [*new, *(k for k in old if k not in new)]
    return "; ".join(f"{k} {old.get(k)!r}, not {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def per_class_rows(metrics: dict) -> list[tuple[str, ...]]:
    """One row per genre of metrics.classification_metrics' per_class figures: genre, precision, recall, F1, support."""
    return [(c, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"]))
            for c, v in metrics["per_class"].items()]
