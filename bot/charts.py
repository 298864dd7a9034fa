"""PNG charts for /stats with matplotlib's Agg backend, painted in a worker thread."""

from __future__ import annotations

import asyncio
import io

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from handlers.stats_charts import Chart, Heatmap, StackedBars

# DejaVu Sans ships with matplotlib and has Cyrillic (and ★) glyphs. Set once, at import:
# rc_context() per picture would change the global rcParams under other threads' feet.
matplotlib.rcParams.update({"font.family": "DejaVu Sans", "font.size": 10})
SIZE = (9.0, 5.0)  # inches; at 120 dpi a 1080 px wide picture, sharp in a chat
DPI = 120
MAX_TICKS = 14  # more labels than this overlap: show every n-th
RETENTION = LinearSegmentedColormap.from_list("retention", ["#f7fbff", "#08519c"])


class StatsCharts:
    """Paints a chart spec to PNG bytes off the event loop (a picture takes 50-200 ms of CPU;
    on the loop that would stall every other update)."""

    async def paint(self, chart: Chart) -> bytes:
        return await asyncio.to_thread(paint_png, chart)


def paint_png(chart: Chart) -> bytes:
    # The object API (Figure and the Agg canvas, not pyplot) keeps no global figure state, so
    # pictures painted in threads at once do not collide.
    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if isinstance(chart, Heatmap):
        _heatmap(axes, chart)
    else:
        _bars(axes, chart)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _nothing(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="#666666")
    axes.set_xticks([])
    axes.set_yticks([])


def _bars(axes: Axes, chart: StackedBars) -> None:
    axes.set_title(chart.title)
    if not any(any(series.values) for series in chart.series):
        _nothing(axes, chart.empty)
        return
    positions = list(range(len(chart.ticks)))
    bottom = [0] * len(positions)
    for series in chart.series:
        axes.bar(positions, series.values, bottom=bottom, label=series.name, color=series.color)
        bottom = [low + value for low, value in zip(bottom, series.values, strict=True)]
    step = max(1, -(-len(positions) // MAX_TICKS))
    axes.set_xticks(positions[::step], chart.ticks[::step], rotation=45, ha="right")
    axes.set_xlabel(chart.x_label)
    axes.set_ylabel(chart.y_label)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="upper left")
    axes.grid(axis="y", alpha=0.3)


def _heatmap(axes: Axes, chart: Heatmap) -> None:
    axes.set_title(chart.title)
    if not chart.rows or not chart.columns:
        _nothing(axes, chart.empty)
        return
    values = [[float("nan") if cell is None else cell for cell in row] for row in chart.cells]
    axes.imshow(values, cmap=RETENTION, vmin=0.0, vmax=1.0, aspect="auto")
    for row, cells in enumerate(chart.cells):
        for column, cell in enumerate(cells):
            if cell is not None:
                axes.text(
                    column,
                    row,
                    chart.texts[row][column],
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if cell > 0.5 else "black",
                )
    axes.set_xticks(range(len(chart.columns)), chart.columns)
    axes.set_yticks(range(len(chart.rows)), chart.rows)
    axes.set_xlabel(chart.x_label)
    axes.set_ylabel(chart.y_label)
