"""Charts as SVG, drawn on the server: numbers in, markup out. Pure.

The console runs no script and its Content-Security-Policy allows styles only from its own
stylesheet (``style-src 'self'``), so a chart carries no ``style`` attribute, no ``<style>``
element and no script: geometry is in SVG attributes, colours in classes of ``console.css``
(``series-<name>``). Every chart is an image to assistive technology (``role="img"``), named by
its ``<title>`` and described by its ``<desc>``; every text it prints is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

#: The drawing's size in SVG units; the stylesheet scales it to the page's width.
WIDTH, HEIGHT = 760, 260
#: Room for the axes' labels: left, right, top, bottom.
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 30
#: How near either end a label under the axis is aligned to it rather than centred.
EDGE = 30


@dataclass(frozen=True)
class Layer:
    """One series of a stacked chart: its name (a class ``series-<name>``), its label and one
    value per point."""

    name: str
    label: str
    values: Sequence[float]


def nice_ticks(top: float, count: int = 4) -> list[int]:
    """Round counts from 0 to at least ``top`` for a vertical axis (1, 2 or 5 times a power of
    ten apart, at least 1), ``count`` steps or about."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = max(1, int(next(m * power for m in (1, 2, 5, 10) if m * power >= raw)))
    steps = math.ceil(top / step - 1e-9)
    return [i * step for i in range(steps + 1)]


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _label(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else _number(value)


def _frame(ident: str, title: str, description: str, body: list[str]) -> Markup:
    ident = escape(ident)
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{ident}-title {ident}-desc">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(description)}</desc>' + "".join(body) + "</svg>")


def _y_axis(ticks: list[int], y: Callable[[float], float]) -> list[str]:
    out = []
    for tick in ticks:
        at = _number(y(tick))
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{at}" y2="{at}"/>')
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{at}" text-anchor="end" '
                   f'dominant-baseline="middle">{escape(_label(tick))}</text>')
    return out


def _x_labels(labels: Sequence[tuple[float, str]]) -> list[str]:
    """Labels centred under their x, but kept inside the drawing at either end."""
    out = []
    for x, text in labels:
        anchor = ("end" if x > WIDTH - RIGHT - EDGE else "start" if x < LEFT + EDGE
                  else "middle")
        out.append(f'<text class="tick" x="{_number(x)}" y="{HEIGHT - BOTTOM + 18}" '
                   f'text-anchor="{anchor}">{escape(text)}</text>')
    return out


def _scale(top: float) -> tuple[list[int], Callable[[float], float]]:
    ticks = nice_ticks(top)
    span = HEIGHT - TOP - BOTTOM

    def y(value: float) -> float:
        return HEIGHT - BOTTOM - span * value / ticks[-1]

    return ticks, y


def stacked_area(ident: str, *, title: str, description: str, xs: Sequence[float],
                 layers: Sequence[Layer], x_labels: Sequence[tuple[float, str]] = ()
                 ) -> Markup:
    """Layers stacked over ``xs`` (any unit, increasing), bottom layer first.

    Parameters:
        ident: unique on the page (the ids of the title and description).
        x_labels: (x, text) pairs written under the axis, in the unit of ``xs``.
    """
    if not xs:
        return _frame(ident, title, description, [])
    if len(xs) == 1:  # one point still makes a visible band
        xs = [xs[0], xs[0] + 1]
        layers = [Layer(la.name, la.label, [la.values[0]] * 2) for la in layers]
    low, high = xs[0], xs[-1]

    def x(value: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (value - low) / (high - low)

    tops = [sum(la.values[i] for la in layers) for i in range(len(xs))]
    ticks, y = _scale(max(tops))
    body = _y_axis(ticks, y)
    below = [0.0] * len(xs)
    for layer in layers:
        above = [b + v for b, v in zip(below, layer.values, strict=True)]
        edge = [f"{_number(x(xv))},{_number(y(v))}" for xv, v in zip(xs, above, strict=True)]
        floor = [f"{_number(x(xv))},{_number(y(v))}"
                 for xv, v in reversed(list(zip(xs, below, strict=True)))]
        body.append(f'<polygon class="series series-{escape(layer.name)}" '
                    f'points="{" ".join(edge + floor)}"><title>{escape(layer.label)}</title>'
                    f"</polygon>")
        below = above
    body.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" '
                f'y2="{HEIGHT - BOTTOM}"/>')
    body += _x_labels([(x(at), text) for at, text in x_labels if low <= at <= high])
    return _frame(ident, title, description, body)


def stacked_bars(ident: str, *, title: str, description: str, labels: Sequence[str],
                 layers: Sequence[Layer], label_every: int = 1) -> Markup:
    """One bar per label, its layers stacked bottom first; every ``label_every``-th label,
    counted back from the last (the newest), is written under its bar. Each segment's tooltip
    says its label, layer and value."""
    count = len(labels)
    slot = (WIDTH - LEFT - RIGHT) / max(count, 1)
    tops = [sum(la.values[i] for la in layers) for i in range(count)]
    ticks, y = _scale(max(tops, default=0))
    body = _y_axis(ticks, y)
    for i, label in enumerate(labels):
        left = LEFT + slot * i + slot * 0.15
        below = 0.0
        for layer in layers:
            value = layer.values[i]
            if value:
                top, bottom = y(below + value), y(below)
                body.append(
                    f'<rect class="series series-{escape(layer.name)}" x="{_number(left)}" '
                    f'y="{_number(top)}" width="{_number(slot * 0.7)}" '
                    f'height="{_number(bottom - top)}"><title>{escape(label)}: '
                    f"{escape(layer.label)} {escape(_label(value))}</title></rect>")
            below += value
    body.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" '
                f'y2="{HEIGHT - BOTTOM}"/>')
    body += _x_labels([(LEFT + slot * (i + 0.5), label) for i, label in enumerate(labels)
                       if (count - 1 - i) % label_every == 0])
    return _frame(ident, title, description, body)
