"""Training curves from ``scalars.json`` as a PNG, drawn without matplotlib.

:func:`plot_curves` backs ``treadle plot``: it reads a run's ``vis_data/scalars.json`` (through
:mod:`treadle.core.fileio`, so a work dir may live on any storage the file I/O layer knows), draws
one panel per key with the training and the validation values against the iteration, and writes
the picture with :func:`~treadle.core.visualization.encode_png`. The drawing is a small pure
Python rasterizer (anti-aliased polylines, markers, axes, ticks, a 5×7 bitmap font): no numpy, no
torch, no matplotlib.

How ``scalars.json`` is read (MMEngine's format: one JSON object per line, each with a ``step``):

- a record with an ``iter`` key was written by :class:`~treadle.core.hooks.LoggerHook` during
  training: its ``step`` is the iteration;
- any other record holds validation metrics. Their ``step`` is the epoch by default
  (``LoggerHook(log_metric_by_epoch=True)``) or the iteration. So that validation shares the
  training axis, a validation record is placed at the iteration of the training record logged
  just before it (validation runs right after that iteration), unless its own step is already
  at least that iteration. A file without training records keeps the steps as written.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "BOOKKEEPING_KEYS",
    "Canvas",
    "Curves",
    "available_keys",
    "default_keys",
    "find_run_dir",
    "format_tick",
    "load_scalars",
    "nice_ticks",
    "plot_curves",
    "render_curves",
    "split_curves",
    "text_width",
]

#: Keys of ``scalars.json`` records that describe the record rather than the model.
BOOKKEEPING_KEYS = frozenset({"step", "iter", "epoch", "time", "data_time", "memory"})

_TRAIN_COLOR = (31, 119, 180)
_VAL_COLOR = (230, 97, 1)
_BACKGROUND = (255, 255, 255)
_TEXT = (40, 40, 40)
_AXIS = (90, 90, 90)
_GRID = (226, 226, 226)
_MUTED = (110, 110, 110)

Color = tuple[int, int, int]
Point = tuple[float, float]

# ---------------------------------------------------------------------------- the font

#: A 5×7 bitmap font (plus two rows for descenders): each block names its glyphs on the first
#: line, then draws them row by row, ``#`` for ink.
_FONT_ART = r"""
  0      1      2      3      4      5      6      7      8      9      A      B
.###.  ..#..  .###.  .###.  ...#.  #####  ..##.  #####  .###.  .###.  .###.  ####.
#...#  .##..  #...#  #...#  ..##.  #....  .#...  ....#  #...#  #...#  #...#  #...#
#..##  ..#..  ....#  ....#  .#.#.  ####.  #....  ...#.  #...#  #...#  #...#  #...#
#.#.#  ..#..  ...#.  ..##.  #..#.  ....#  ####.  ..#..  .###.  .####  #####  ####.
##..#  ..#..  ..#..  ....#  #####  ....#  #...#  .#...  #...#  ....#  #...#  #...#
#...#  ..#..  .#...  #...#  ...#.  #...#  #...#  .#...  #...#  ...#.  #...#  #...#
.###.  .###.  #####  .###.  ...#.  .###.  .###.  .#...  .###.  .##..  #...#  ####.
.....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....
.....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....

  C      D      E      F      G      H      I      J      K      L      M      N
.###.  ####.  #####  #####  .###.  #...#  .###.  ..###  #...#  #....  #...#  #...#
#...#  #...#  #....  #....  #...#  #...#  ..#..  ...#.  #..#.  #....  ##.##  #...#
#....  #...#  #....  #....  #....  #...#  ..#..  ...#.  #.#..  #....  #.#.#  ##..#
#....  #...#  ####.  ####.  #.###  #####  ..#..  ...#.  ##...  #....  #.#.#  #.#.#
#....  #...#  #....  #....  #...#  #...#  ..#..  ...#.  #.#..  #....  #...#  #..##
#...#  #...#  #....  #....  #...#  #...#  ..#..  #..#.  #..#.  #....  #...#  #...#
.###.  ####.  #####  #....  .####  #...#  .###.  .##..  #...#  #####  #...#  #...#
.....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....
.....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....

  O      P      Q      R      S      T      U      V      W      X      Y      Z
.###.  ####.  .###.  ####.  .####  #####  #...#  #...#  #...#  #...#  #...#  #####
#...#  #...#  #...#  #...#  #....  ..#..  #...#  #...#  #...#  #...#  #...#  ....#
#...#  #...#  #...#  #...#  #....  ..#..  #...#  #...#  #...#  .#.#.  .#.#.  ...#.
#...#  ####.  #...#  ####.  .###.  ..#..  #...#  #...#  #.#.#  ..#..  ..#..  ..#..
#...#  #....  #.#.#  #.#..  ....#  ..#..  #...#  #...#  #.#.#  .#.#.  ..#..  .#...
#...#  #....  #..#.  #..#.  ....#  ..#..  #...#  .#.#.  #.#.#  #...#  ..#..  #....
.###.  #....  .##.#  #...#  ####.  ..#..  .###.  ..#..  .#.#.  #...#  ..#..  #####
.....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....
.....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....

  a      b      c      d      e      f      g      h      i      j      k      l
.....  #....  .....  ....#  .....  ..##.  .....  #....  ..#..  ...#.  #....  .##..
.....  #....  .....  ....#  .....  .#..#  .....  #....  .....  .....  #....  ..#..
.###.  #.##.  .###.  .##.#  .###.  .#...  .####  #.##.  .##..  ..##.  #..#.  ..#..
....#  ##..#  #....  #..##  #...#  ###..  #...#  ##..#  ..#..  ...#.  #.#..  ..#..
.####  #...#  #....  #...#  #####  .#...  #...#  #...#  ..#..  ...#.  ##...  ..#..
#...#  #...#  #...#  #...#  #....  .#...  #...#  #...#  ..#..  ...#.  #.#..  ..#..
.####  ####.  .###.  .####  .###.  .#...  .####  #...#  .###.  ...#.  #..#.  .###.
.....  .....  .....  .....  .....  .....  ....#  .....  .....  #..#.  .....  .....
.....  .....  .....  .....  .....  .....  .###.  .....  .....  .##..  .....  .....

  m      n      o      p      q      r      s      t      u      v      w      x
.....  .....  .....  .....  .....  .....  .....  .#...  .....  .....  .....  .....
.....  .....  .....  .....  .....  .....  .....  .#...  .....  .....  .....  .....
##.#.  #.##.  .###.  ####.  .####  #.##.  .###.  ###..  #...#  #...#  #...#  #...#
#.#.#  ##..#  #...#  #...#  #...#  ##..#  #....  .#...  #...#  #...#  #...#  .#.#.
#.#.#  #...#  #...#  #...#  #...#  #....  .###.  .#...  #...#  #...#  #.#.#  ..#..
#.#.#  #...#  #...#  #...#  #...#  #....  ....#  .#..#  #..##  .#.#.  #.#.#  .#.#.
#.#.#  #...#  .###.  ####.  .####  #....  ####.  ..##.  .##.#  ..#..  .#.#.  #...#
.....  .....  .....  #....  ....#  .....  .....  .....  .....  .....  .....  .....
.....  .....  .....  #....  ....#  .....  .....  .....  .....  .....  .....  .....

  y      z      !      "      #      %      '      (      )      *      +      ,
.....  .....  ..#..  .#.#.  .#.#.  ##...  ..#..  ...#.  .#...  .....  .....  .....
.....  .....  ..#..  .#.#.  .#.#.  ##..#  ..#..  ..#..  ..#..  ..#..  ..#..  .....
#...#  #####  ..#..  .....  #####  ...#.  .....  .#...  ...#.  #.#.#  ..#..  .....
#...#  ...#.  ..#..  .....  .#.#.  ..#..  .....  .#...  ...#.  .###.  #####  .....
#...#  ..#..  ..#..  .....  #####  .#...  .....  .#...  ...#.  #.#.#  ..#..  .....
#...#  .#...  .....  .....  .#.#.  #..##  .....  ..#..  ..#..  ..#..  ..#..  .##..
.####  #####  ..#..  .....  .#.#.  ...##  .....  ...#.  .#...  .....  .....  ..#..
....#  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .#...
.###.  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....

  -      .      /      :      ;      <      =      >      ?      @      [      ]
.....  .....  .....  .....  .....  ...#.  .....  .#...  .###.  .###.  .###.  .###.
.....  .....  ....#  .##..  .##..  ..#..  .....  ..#..  #...#  #...#  .#...  ...#.
.....  .....  ...#.  .##..  .##..  .#...  #####  ...#.  ....#  ....#  .#...  ...#.
.###.  .....  ..#..  .....  .....  #....  .....  ....#  ...#.  .##.#  .#...  ...#.
.....  .....  .#...  .##..  .##..  .#...  #####  ...#.  ..#..  #.#.#  .#...  ...#.
.....  .##..  #....  .##..  ..#..  ..#..  .....  ..#..  .....  #.#.#  .#...  ...#.
.....  .##..  .....  .....  .#...  ...#.  .....  .#...  ..#..  .###.  .###.  .###.
.....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....
.....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....  .....

  _      |      \      ~
.....  ..#..  .....  .....
.....  ..#..  #....  .....
.....  ..#..  .#...  .#...
.....  ..#..  ..#..  #.#.#
.....  ..#..  ...#.  ...#.
.....  ..#..  ....#  .....
.....  ..#..  .....  .....
#####  .....  .....  .....
.....  .....  .....  .....
"""

_GLYPH_W, _GLYPH_H = 5, 9
_font_cache: dict[str, tuple[tuple[int, int], ...]] = {}


def _font() -> dict[str, tuple[tuple[int, int], ...]]:
    """Glyph → its ink pixels ``(x, y)``, parsed from :data:`_FONT_ART` on first use."""
    if not _font_cache:
        lines = _FONT_ART.strip("\n").split("\n")
        for start in range(0, len(lines), _GLYPH_H + 2):
            names = lines[start].split()
            rows = [line.split("  ") for line in lines[start + 1 : start + 1 + _GLYPH_H]]
            for i, name in enumerate(names):
                _font_cache[name] = tuple(
                    (x, y) for y, row in enumerate(rows) for x, ch in enumerate(row[i]) if ch == "#"
                )
        _font_cache[" "] = ()
    return _font_cache


# ---------------------------------------------------------------------------- the canvas


class Canvas:
    """An RGB pixel buffer with the few drawing operations a line chart needs.

    It quacks like a ``(height, width, 3)`` ``uint8`` array for
    :func:`~treadle.core.visualization.encode_png` (``shape``, ``dtype``, ``tobytes``).
    """

    dtype = "uint8"

    def __init__(self, width: int, height: int, background: Color = _BACKGROUND) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    def tobytes(self, order: str = "C") -> bytes:
        return bytes(self.pixels)

    def fill_rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        """Fill the pixels ``x0 <= x < x1``, ``y0 <= y < y1`` (clipped to the canvas)."""
        x0, x1 = max(x0, 0), min(x1, self.width)
        y0, y1 = max(y0, 0), min(y1, self.height)
        if x0 >= x1 or y0 >= y1:
            return
        row = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            start = (y * self.width + x0) * 3
            self.pixels[start : start + len(row)] = row

    def text(self, x: int, y: int, text: str, color: Color = _TEXT, scale: int = 2) -> None:
        """Draw ``text`` with its top-left corner at ``(x, y)``; unknown characters show ``?``."""
        font = _font()
        for ch in text:
            for gx, gy in font.get(ch, font["?"]):
                self.fill_rect(
                    x + gx * scale,
                    y + gy * scale,
                    x + (gx + 1) * scale,
                    y + (gy + 1) * scale,
                    color,
                )
            x += text_width(" ", scale)

    def composite(self, coverage: Mapping[int, float], color: Color) -> None:
        """Blend ``color`` over the pixels of ``coverage`` (pixel index → opacity in 0–1)."""
        px = self.pixels
        r, g, b = color
        for index, alpha in coverage.items():
            i = index * 3
            keep = 1.0 - alpha
            px[i] = int(px[i] * keep + r * alpha + 0.5)
            px[i + 1] = int(px[i + 1] * keep + g * alpha + 0.5)
            px[i + 2] = int(px[i + 2] * keep + b * alpha + 0.5)


def text_width(text: str, scale: int = 2) -> int:
    """Width in pixels of ``text`` drawn with :meth:`Canvas.text` (one pixel column between
    glyphs, none after the last)."""
    return len(text) * (_GLYPH_W + 1) * scale - (scale if text else 0)


@dataclass
class _Box:
    """A clip rectangle: ``left <= x <= right``, ``top <= y <= bottom``."""

    left: int
    top: int
    right: int
    bottom: int


def _stroke(
    coverage: dict[int, float], points: Sequence[Point], width: float, clip: _Box, stride: int
) -> None:
    """Add an anti-aliased polyline of ``width`` pixels to ``coverage`` (max, not sum, so joints
    are not darker than the line)."""
    radius = width / 2.0
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        _segment(coverage, x0, y0, x1, y1, radius, clip, stride)
    if len(points) == 1:
        _dot(coverage, points[0][0], points[0][1], radius, clip, stride)


def _segment(
    coverage: dict[int, float],
    x0: float,
    y0: float,
    x1: float,
    y1: float,
    radius: float,
    clip: _Box,
    stride: int,
) -> None:
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    reach = radius * 1.5 + 1.0
    steep = abs(dy) > abs(dx)
    # Walk along the major axis; cover a short run of pixels across it at each step.
    if steep:
        a0, a1, b0, da, db = y0, y1, x0, dy, dx
        lo_clip, hi_clip, lo_cross, hi_cross = clip.top, clip.bottom, clip.left, clip.right
    else:
        a0, a1, b0, da, db = x0, x1, y0, dx, dy
        lo_clip, hi_clip, lo_cross, hi_cross = clip.left, clip.right, clip.top, clip.bottom
    start = max(math.floor(min(a0, a1) - reach), lo_clip)
    stop = min(math.ceil(max(a0, a1) + reach), hi_clip)
    for a in range(start, stop + 1):
        t = (a - a0) / da if da else 0.0
        t = 0.0 if t < 0.0 else min(t, 1.0)
        center = b0 + t * db
        for b in range(
            max(math.floor(center - reach), lo_cross), min(math.ceil(center + reach), hi_cross) + 1
        ):
            px, py = (b, a) if steep else (a, b)
            # Distance from the pixel centre to the segment.
            if length2:
                u = ((px - x0) * dx + (py - y0) * dy) / length2
                u = 0.0 if u < 0.0 else min(u, 1.0)
                ex, ey = px - (x0 + u * dx), py - (y0 + u * dy)
            else:
                ex, ey = px - x0, py - y0
            alpha = radius + 0.5 - math.sqrt(ex * ex + ey * ey)
            if alpha > 0.0:
                index = py * stride + px
                if alpha > 1.0:
                    alpha = 1.0
                if alpha > coverage.get(index, 0.0):
                    coverage[index] = alpha


def _dot(
    coverage: dict[int, float], x: float, y: float, radius: float, clip: _Box, stride: int
) -> None:
    """Add an anti-aliased filled disc to ``coverage``."""
    for py in range(
        max(math.floor(y - radius - 1), clip.top), min(math.ceil(y + radius + 1), clip.bottom) + 1
    ):
        for px in range(
            max(math.floor(x - radius - 1), clip.left),
            min(math.ceil(x + radius + 1), clip.right) + 1,
        ):
            alpha = radius + 0.5 - math.hypot(px - x, py - y)
            if alpha > 0.0:
                index = py * stride + px
                alpha = min(alpha, 1.0)
                if alpha > coverage.get(index, 0.0):
                    coverage[index] = alpha


def _thin(points: Sequence[Point], tolerance: float = 0.5) -> list[Point]:
    """Drop points closer than ``tolerance`` pixels (on both axes) to the last kept one; the
    last point is always kept. A long run becomes about as many segments as it has pixels."""
    if len(points) <= 2:
        return list(points)
    kept = [points[0]]
    lx, ly = points[0]
    for x, y in points[1:-1]:
        if abs(x - lx) >= tolerance or abs(y - ly) >= tolerance:
            kept.append((x, y))
            lx, ly = x, y
    kept.append(points[-1])
    return kept


def _envelope(points: Sequence[Point], per_column: int = 4) -> list[Point]:
    """Within each pixel column holding more than ``per_column`` points keep the first, the
    lowest, the highest and the last (in order): the same picture, far fewer segments."""
    out: list[Point] = []
    column: list[Point] = []
    current: int | None = None
    for point in [*points, (math.inf, 0.0)]:
        key = None if math.isinf(point[0]) else round(point[0])
        if key != current and column:
            if len(column) > per_column:
                low = min(range(len(column)), key=lambda i: column[i][1])
                high = max(range(len(column)), key=lambda i: column[i][1])
                keep = sorted({0, low, high, len(column) - 1})
                out.extend(column[i] for i in keep)
            else:
                out.extend(column)
            column = []
        current = key
        column.append(point)
    return out


def _smoothing(values: Sequence[float]) -> float:
    """The default EMA weight: about ``len(values) / 50`` points of memory for a noisy series of
    30 points or more; none for fewer points or a smooth one (a schedule, an accuracy).

    Noisy means: the path up and down is more than ten times the range of the values.
    """
    count = len(values)
    if count < 30:
        return 0.0
    spread = max(values) - min(values)
    path = sum(abs(b - a) for a, b in itertools.pairwise(values))
    if spread <= 0 or path < 10 * spread:
        return 0.0
    span = min(max(count / 50.0, 2.0), 200.0)
    return 1.0 - 2.0 / (span + 1.0)


def _ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start."""
    out: list[float] = []
    last = 0.0
    for n, value in enumerate(values, 1):
        last = last * weight + (1.0 - weight) * value
        out.append(last / (1.0 - weight**n))
    return out


def _tint(color: Color, strength: float) -> Color:
    """``color`` mixed with white: ``strength`` 1 is the colour, 0 is white."""
    r, g, b = color
    return (
        round(255 - (255 - r) * strength),
        round(255 - (255 - g) * strength),
        round(255 - (255 - b) * strength),
    )


# ---------------------------------------------------------------------------- ticks


def nice_ticks(
    low: float, high: float, target: int = 5, integer: bool = False
) -> tuple[list[float], float]:
    """Round tick values inside ``[low, high]``, as close to ``target`` of them as can be, and
    their spacing.

    The spacing is 1, 2 or 5 times a power of ten (at least 1 with ``integer``); on a tie the
    wider spacing wins.
    """
    if not high > low:
        high = low + 1.0
    magnitude = 10.0 ** math.floor(math.log10((high - low) / max(target, 1)))
    best: tuple[float, float] | None = None  # (distance to target, -step)
    step = magnitude
    for candidate in (m * magnitude for m in (1.0, 2.0, 5.0, 10.0, 20.0)):
        if integer and candidate < 1.0:
            continue
        count = math.floor(high / candidate + 1e-9) - math.ceil(low / candidate - 1e-9) + 1
        score = (abs(count - target), -candidate)
        if best is None or score < best:
            best, step = score, candidate
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    ticks = [round(i * step, 12) for i in range(first, last + 1)]
    return ticks, step


def format_tick(value: float, step: float) -> str:
    """A tick label: as many decimals as ``step`` needs; ``1e-05`` style for tiny or huge."""
    if value == 0:
        return "0"
    big = max(abs(value), step)
    if step < 1e-4 or big >= 1e7:
        return f"{value:.1e}".replace("e-0", "e-").replace("e+0", "e")
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if step * 10**decimals % 1 > 1e-6:  # 0.25-like steps need one more digit
        decimals += 1
    return f"{value:.{decimals}f}"


# ---------------------------------------------------------------------------- the data


@dataclass
class Curves:
    """The values to plot for one key: ``(iteration, value)`` pairs for training and validation."""

    key: str
    train: list[Point] = field(default_factory=list)
    val: list[Point] = field(default_factory=list)


def load_scalars(path: str) -> list[dict[str, Any]]:
    """Read a ``scalars.json`` file (one JSON object per line).

    Args:
        path: The file; any path :mod:`treadle.core.fileio` understands.

    Returns:
        The records, in file order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: A line is not a JSON object, or the file has no records.
    """
    from treadle.core.fileio import exists, get_text

    if not exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    records: list[dict[str, Any]] = []
    for number, line in enumerate(get_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object")
        records.append(record)
    if not records:
        raise ValueError(f"{path} holds no scalars yet (the run logged nothing)")
    return records


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def available_keys(records: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """The plottable keys of training and of validation records, in first-seen order."""
    train: dict[str, None] = {}
    val: dict[str, None] = {}
    for record in records:
        target = train if "iter" in record else val
        for key, value in record.items():
            if key not in BOOKKEEPING_KEYS and _number(value) is not None:
                target.setdefault(key)
    return list(train), list(val)


def default_keys(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """What ``treadle plot`` shows without ``--keys``: the training losses, then the
    validation metrics (keys only validation has)."""
    train, val = available_keys(records)
    keys = [k for k in train if "loss" in k]
    keys += [k for k in val if k not in train]
    return keys or train[:1] or val[:1]


def split_curves(records: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[Curves]:
    """The training and validation curves of ``keys`` (see the module docstring for the x axis).

    Non-finite values (a diverged loss) are left out.

    Raises:
        KeyError: A key is in no record; the message lists the keys there are.
    """
    train_keys, val_keys = available_keys(records)
    known = set(train_keys) | set(val_keys)
    unknown = [k for k in keys if k not in known]
    if unknown:
        listed = ", ".join(dict.fromkeys([*train_keys, *val_keys]))
        raise KeyError(
            f"no scalar {', '.join(map(repr, unknown))} in scalars.json; available keys: {listed}"
        )
    curves = {key: Curves(key) for key in keys}
    last_train: float | None = None
    for record in records:
        step = _number(record.get("step"))
        if step is None:
            continue
        is_train = "iter" in record
        if is_train:
            last_train = step
        elif last_train is not None and step < last_train:
            step = last_train  # an epoch number: validation ran after this iteration
        for key, curve in curves.items():
            value = _number(record.get(key))
            if value is not None:
                (curve.train if is_train else curve.val).append((step, value))
    return list(curves.values())


# ---------------------------------------------------------------------------- drawing

_SCALE = 2  # font scale: glyphs are 10×14 pixels (18 with descenders)
_LINE_H = _GLYPH_H * _SCALE
_PAD = 12


def _y_limits(curve: Curves) -> tuple[float, float]:
    values = [v for _, v in curve.train] + [v for _, v in curve.val]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.06
    return low - pad, high + pad


def render_curves(
    curves: Sequence[Curves],
    title: str = "",
    width: int = 1000,
    panel_height: int = 300,
    smooth: float | None = None,
) -> Canvas:
    """Draw one panel per curve, stacked, sharing the iteration axis.

    Training is a blue line, validation an orange line with a marker at each value; each panel
    has its key as title, a legend, a grid and labelled ticks.

    Args:
        curves: What to draw (see :func:`split_curves`).
        title: A line above the panels (the run).
        width: Image width in pixels.
        panel_height: Height of each panel in pixels.
        smooth: The training curves' smoothing weight in ``[0, 1)`` (TensorBoard's: an
            exponential moving average; the raw values are drawn faint underneath); ``0`` draws
            the raw values only; ``None`` smooths noisy curves of 30 points or more only,
            with a weight chosen from the number of points.

    Returns:
        The picture; ``encode_png(canvas)`` makes it a PNG.
    """
    if not curves:
        raise ValueError("nothing to plot: no keys given")
    if smooth is not None and not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth!r}")
    header = _LINE_H + 2 * _PAD if title else _PAD
    footer = _LINE_H + 2 * _PAD
    height = header + panel_height * len(curves) + footer
    canvas = Canvas(width, height)
    if title:
        canvas.text(_PAD, _PAD, title, _MUTED, _SCALE)

    xs = [x for c in curves for x, _ in (*c.train, *c.val)]
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    x_pad = (x_high - x_low) * 0.02  # room for the markers at both ends
    x_low, x_high = x_low - x_pad, x_high + x_pad
    x_ticks, x_step = nice_ticks(x_low, x_high, target=8, integer=all(x == int(x) for x in xs))

    limits = [_y_limits(c) for c in curves]
    y_ticks = [nice_ticks(low, high, target=5) for low, high in limits]
    y_labels = [[format_tick(v, step) for v in ticks] for ticks, step in y_ticks]
    left = _PAD + max(text_width(s, _SCALE) for labels in y_labels for s in labels) + 10
    right = width - _PAD - 10

    for i, curve in enumerate(curves):
        top = header + i * panel_height + _LINE_H + _PAD
        bottom = header + (i + 1) * panel_height - _LINE_H - 2 * _PAD
        box = _Box(left, top, right, bottom)
        y_low, y_high = limits[i]

        def to_px(
            x: float, y: float, box: _Box = box, lo: float = y_low, hi: float = y_high
        ) -> Point:
            return (
                box.left + (x - x_low) / (x_high - x_low) * (box.right - box.left),
                box.bottom - (y - lo) / (hi - lo) * (box.bottom - box.top),
            )

        # Grid, ticks and labels.
        ticks, _ = y_ticks[i]
        for value, label in zip(ticks, y_labels[i], strict=True):
            if not y_low <= value <= y_high:
                continue
            py = round(to_px(x_low, value)[1])
            canvas.fill_rect(left, py, right + 1, py + 1, _GRID)
            canvas.fill_rect(left - 5, py, left, py + 1, _AXIS)
            canvas.text(left - 8 - text_width(label, _SCALE), py - 7, label, _TEXT, _SCALE)
        for value in x_ticks:
            if not x_low <= value <= x_high:
                continue
            px = round(to_px(value, y_low)[0])
            canvas.fill_rect(px, top, px + 1, bottom + 1, _GRID)
            canvas.fill_rect(px, bottom + 1, px + 1, bottom + 6, _AXIS)
            label = format_tick(value, x_step)
            canvas.text(px - text_width(label, _SCALE) // 2, bottom + 10, label, _TEXT, _SCALE)
        # Frame.
        canvas.fill_rect(left, top, right + 1, top + 1, _AXIS)
        canvas.fill_rect(left, bottom, right + 1, bottom + 1, _AXIS)
        canvas.fill_rect(left, top, left + 1, bottom + 1, _AXIS)
        canvas.fill_rect(right, top, right + 1, bottom + 1, _AXIS)

        # Curves: validation over training.
        inner = _Box(left + 1, top + 1, right - 1, bottom - 1)
        for points, color, marker in (
            (curve.train, _TRAIN_COLOR, False),
            (curve.val, _VAL_COLOR, True),
        ):
            if not points:
                continue
            points = sorted(points)
            weight = _smoothing([y for _, y in points]) if smooth is None else smooth
            pixels = [to_px(x, y) for x, y in points]
            coverage: dict[int, float] = {}
            if not marker and weight > 0:
                # The raw values faint, the smoothed trend on top.
                _stroke(coverage, _thin(_envelope(pixels)), 1.5, inner, width)
                canvas.composite(coverage, _tint(color, 0.35))
                coverage = {}
                smoothed = _ema([y for _, y in points], weight)
                pixels = [to_px(x, y) for (x, _), y in zip(points, smoothed, strict=True)]
            _stroke(coverage, _thin(_envelope(pixels)), 2.0, inner, width)
            if marker:
                for mx, my in pixels:
                    _dot(coverage, mx, my, 3.5, inner, width)
            canvas.composite(coverage, color)

        # Title and legend, above the panel.
        title_y = top - _LINE_H - 2
        canvas.text(left, title_y, curve.key, _TEXT, _SCALE)
        legend = [
            (n, c)
            for n, p, c in (("train", curve.train, _TRAIN_COLOR), ("val", curve.val, _VAL_COLOR))
            if p
        ]
        x = right
        for name, color in reversed(legend):
            x -= text_width(name, _SCALE)
            canvas.text(x, title_y, name, _TEXT, _SCALE)
            x -= 30
            mid = title_y + 7
            swatch: dict[int, float] = {}
            clip = _Box(0, 0, width - 1, height - 1)
            _stroke(swatch, [(x, mid), (x + 22, mid)], 2.0, clip, width)
            if color == _VAL_COLOR:
                _dot(swatch, x + 11, mid, 3.5, clip, width)
            canvas.composite(swatch, color)
            x -= 20

    label = "iteration"
    canvas.text(
        (left + right - text_width(label, _SCALE)) // 2,
        height - _PAD - _LINE_H,
        label,
        _MUTED,
        _SCALE,
    )
    return canvas


# ---------------------------------------------------------------------------- files


def find_run_dir(work_dir: str, run: str | None = None) -> str:
    """The run folder to plot: ``work_dir/<run>``, else the newest ``work_dir/<timestamp>`` with
    a ``vis_data/scalars.json``. ``work_dir`` may also be a run folder itself.

    Raises:
        FileNotFoundError: ``work_dir`` does not exist, has no run with scalars, or has no run
            ``run`` (the message lists the runs there are).
    """
    from treadle.core.fileio import isdir, isfile, join_path, list_dir_or_file

    if not isdir(work_dir):
        raise FileNotFoundError(f"work dir {work_dir} does not exist")
    if run is None and isfile(join_path(work_dir, "vis_data", "scalars.json")):
        return work_dir
    runs = sorted(
        name
        for name in list_dir_or_file(work_dir, list_dir=True, list_file=False)
        if isfile(join_path(work_dir, name, "vis_data", "scalars.json"))
    )
    if run is not None:
        if run not in runs:
            listed = ", ".join(runs) or "none"
            raise FileNotFoundError(
                f"no run {run!r} with vis_data/scalars.json in {work_dir} (runs: {listed})"
            )
        return join_path(work_dir, run)
    if not runs:
        raise FileNotFoundError(
            f"no run in {work_dir}: expected {join_path(work_dir, '<timestamp>', 'vis_data', 'scalars.json')}"
            " (train with a LocalVisBackend, the default)"
        )
    return join_path(work_dir, runs[-1])  # timestamps sort in time order


def plot_curves(
    work_dir: str,
    keys: Sequence[str] | None = None,
    out_file: str | None = None,
    run: str | None = None,
    smooth: float | None = None,
) -> str:
    """Plot a run's training and validation curves to a PNG (``treadle plot``).

    Args:
        work_dir: The work dir (or one run folder of it).
        keys: The scalars to plot, one panel each; default: the training losses and the
            validation metrics.
        out_file: Where to write the PNG; default ``<run folder>/curves.png``.
        run: The run folder's name (its timestamp); default: the newest.
        smooth: The training curves' smoothing (see :func:`render_curves`).

    Returns:
        The path written.

    Raises:
        FileNotFoundError: No run to plot (see :func:`find_run_dir`).
        KeyError: A key the run did not log.
        ValueError: The scalars file is empty or not JSON lines.
    """
    from treadle.core.fileio import join_path, put
    from treadle.core.visualization.png import encode_png

    run_dir = find_run_dir(work_dir, run)
    records = load_scalars(join_path(run_dir, "vis_data", "scalars.json"))
    chosen = list(keys) if keys else default_keys(records)
    if not chosen:
        raise ValueError(f"{join_path(run_dir, 'vis_data', 'scalars.json')} has no numeric scalars")
    curves = split_curves(records, chosen)
    canvas = render_curves(curves, title=run_dir, smooth=smooth)
    out = out_file if out_file is not None else join_path(run_dir, "curves.png")
    put(encode_png(canvas), out)
    return out
