"""The results' charts drawn with Pillow: bars, lines, axes with round ticks, legends.

matplotlib drew them in 0.1 to 0.2 s each, and its import took half a second more: two
seconds of a night that draws fourteen. These are the few shapes the charts need, drawn in a
few milliseconds. Text is Pillow's own font (Aileron), whose glyphs are ASCII's: what the
charts write (names of [a-z0-9_], dates, figures) is.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from functools import cache

from PIL import Image, ImageDraw, ImageFont

BLUE, ORANGE = "#1f77b4", "#ff7f0e"  # the first two colours of the usual palette
INK, TICK = "#000000", 4


@cache
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def nice_ticks(top: float, count: int = 5, whole: bool = False) -> list[float]:
    """0 and round steps (1, 2, 2.5 or 5 times a power of ten) up to at least `top`; steps
    of at least 1 when `whole` (a count of people)."""
    top = top if top > 0 else 1.0
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(m * power for m in steps if m * power >= raw)
    step = max(step, 1) if whole else step
    # rounded, so that 3 steps of 0.2 are 0.6 and not 0.6000000000000001
    return [round(i * step, 12) for i in range(math.ceil(top / step - 1e-9) + 1)]


def tick_label(value: float) -> str:
    """1,500 or 2.5; from a million on 1.5M, 2B, 3T (the axis' margin holds six digits)."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if value >= scale:
            return f"{value / scale:,.6g}{suffix}"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.6g}"


class Canvas:
    """A white picture to draw a chart on, in pixels from its top left corner."""

    def __init__(self, width: int, height: int):
        self.image = Image.new("RGB", (width, height), "white")
        self.draw = ImageDraw.Draw(self.image)

    def text(self, xy: tuple[float, float], text: str, size: int = 12, anchor: str = "la"):
        self.draw.multiline_text(xy, text, fill=INK, font=font(size), anchor=anchor, align="center")

    def heading(self, *lines: str, size: int) -> None:
        """Lines centred at the top, each cut short to the picture's width."""
        fitted = [self.fitted(line, self.image.width - 20, size) for line in lines]
        self.text((self.image.width / 2, 12), "\n".join(fitted), size=size, anchor="ma")

    def text_width(self, text: str, size: int = 12) -> float:
        return self.draw.textlength(text, font=font(size))

    def fitted(self, text: str, width: float, size: int = 12) -> str:
        """`text`, its end cut off for "..." when it is wider than `width`."""
        if self.text_width(text, size) <= width:
            return text
        while text and self.text_width(f"{text}...", size) > width:
            text = text[:-1]
        return f"{text}..."

    def vertical_text(self, centre: tuple[float, float], text: str, size: int = 12) -> None:
        """Text read from the bottom up, centred on `centre` (an axis' label)."""
        width = math.ceil(self.text_width(text, size)) + 2
        strip = Image.new("RGB", (width, size + 6), "white")
        ImageDraw.Draw(strip).text((1, 1), text, fill=INK, font=font(size))
        turned = strip.rotate(90, expand=True)
        self.image.paste(
            turned, (round(centre[0] - turned.width / 2), round(centre[1] - turned.height / 2))
        )

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()


class Panel:
    """A rectangle of the canvas with its own scales: x from 0 to `x_span`, y from 0 to
    `y_top`, both growing right and up."""

    def __init__(self, canvas: Canvas, box: tuple[int, int, int, int], x_span: float, y_top: float):
        self.canvas, self.box = canvas, box
        self.x_span, self.y_top = x_span, y_top

    def x(self, value: float) -> float:
        left, _, right, _ = self.box
        return left + (right - left) * value / self.x_span

    def y(self, value: float) -> float:
        _, top, _, bottom = self.box
        return bottom - (bottom - top) * value / self.y_top

    def frame(self) -> None:
        self.canvas.draw.rectangle(self.box, outline=INK)

    def y_ticks(self, ticks: Sequence[float], label: str) -> None:
        left = self.box[0]
        for value in ticks:
            y = self.y(value)
            self.canvas.draw.line([(left - TICK, y), (left, y)], fill=INK)
            self.canvas.text((left - TICK - 3, y), tick_label(value), anchor="rm")
        widest = max(self.canvas.text_width(tick_label(v)) for v in ticks)
        middle = (self.box[1] + self.box[3]) / 2
        # beside the widest tick label, never off the picture
        self.canvas.vertical_text((max(10, left - TICK - widest - 16), middle), label, size=13)

    def x_ticks(self, ticks: Sequence[tuple[float, str]], label: str | None = None) -> None:
        bottom, edge = self.box[3], self.canvas.image.width
        for value, text in ticks:
            x = self.x(value)
            self.canvas.draw.line([(x, bottom), (x, bottom + TICK)], fill=INK)
            half = self.canvas.text_width(text) / 2 + 2  # a label at the edge stays whole
            self.canvas.text((min(max(x, half), edge - half), bottom + TICK + 3), text, anchor="ma")
        if label:
            middle = (self.box[0] + self.box[2]) / 2
            self.canvas.text((middle, bottom + TICK + 22), label, size=13, anchor="ma")

    def column(self, x: float, width: float, height: float, colour: str) -> None:
        """A bar from 0 up to `height`, `width` wide around `x`."""
        if height > 0:
            box = (self.x(x - width / 2), self.y(height), self.x(x + width / 2), self.y(0))
            self.canvas.draw.rectangle(box, fill=colour)

    def row(self, y: float, height: float, width: float, colour: str) -> None:
        """A bar from 0 right to `width`, `height` tall around `y`."""
        if width > 0:
            box = (self.x(0), self.y(y + height / 2), self.x(width), self.y(y - height / 2))
            self.canvas.draw.rectangle(box, fill=colour)

    def line(self, points: Sequence[tuple[float, float]], colour: str) -> None:
        """A line through the points with a dot on each; a NaN leaves a gap."""
        run: list[tuple[float, float]] = []
        for x, y in [*points, (math.nan, math.nan)]:
            if math.isnan(y):
                if len(run) > 1:
                    self.canvas.draw.line(run, fill=colour, width=2)
                run = []
                continue
            run.append((self.x(x), self.y(y)))
            self.dot(run[-1], colour)

    def dot(self, centre: tuple[float, float], colour: str, radius: float = 4) -> None:
        x, y = centre
        self.canvas.draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)

    def legend(self, entries: Sequence[tuple[str, str, str]]) -> None:
        """(label, colour, 'bar' or 'line') in a row above the panel's right end: outside
        it, where no bar or point can be hidden."""
        y = self.box[1] - 10
        widths = [30 + self.canvas.text_width(label) for label, _, _ in entries]
        left = self.box[2] - sum(widths) - 16 * (len(entries) - 1)
        for (label, colour, mark), width in zip(entries, widths, strict=True):
            if mark == "bar":
                self.canvas.draw.rectangle((left, y - 5, left + 22, y + 5), fill=colour)
            else:
                self.canvas.draw.line([(left, y), (left + 22, y)], fill=colour, width=2)
                self.dot((left + 11, y), colour)
            self.canvas.text((left + 30, y), label, anchor="lm")
            left += width + 16
