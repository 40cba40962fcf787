"""Matplotlib figures made and saved without pyplot, for reports and sweeps."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(**kwargs: Any) -> Figure:
    """A matplotlib figure made without pyplot: no display backend chosen, no global state changed for
    the program that calls us, freed with its last reference."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """A figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
