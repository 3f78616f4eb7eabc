"""Sparklines in block characters, one table cell wide.

A cell holds fewer characters than the history has samples, so each
character shows the highest of the samples it covers: a short spike stays
visible. The scale runs from zero to the highest sample shown (at least
``floor``, so that an idle process draws a flat line rather than noise
blown up to full height).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

BARS = " ▁▂▃▄▅▆▇█"


def sparkline(samples: Iterable[float | None], width: int, floor: float = 0.0,
              span: int = 60) -> str:
    """The last ``span`` samples in ``width`` characters, newest on the
    right; missing samples (None, or a history still filling) are blank."""
    values = list(samples)[-span:]
    per = max(1, math.ceil(span / width))
    # Pad on the left to a whole number of characters, so the newest sample
    # always ends the line and each character keeps its samples as time goes.
    blanks: list[float | None] = [None] * (per * width - len(values))
    padded = blanks + values
    groups = [padded[i:i + per] for i in range(0, len(padded), per)][-width:]
    peaks = [max((v for v in group if v is not None), default=None) for group in groups]
    top = max([floor, *(p for p in peaks if p is not None)])
    out = []
    for peak in peaks:
        if peak is None:
            out.append(" ")
        elif top <= 0:
            out.append(BARS[1])
        else:
            level = round(max(peak, 0.0) / top * (len(BARS) - 2))
            out.append(BARS[1 + min(level, len(BARS) - 2)])
    return "".join(out)
