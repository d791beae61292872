"""Charts as SVG, drawn with matplotlib on the server: no JavaScript, no CDN."""

from __future__ import annotations

import io
import threading

_lock = threading.Lock()  # pyplot's state is global; one figure at a time per process


def _svg(figure) -> str:  # type: ignore[no-untyped-def]
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    return buffer.getvalue()


def _figure():  # type: ignore[no-untyped-def]
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    from matplotlib import pyplot

    pyplot.rcParams.update({"font.family": "DejaVu Sans", "font.size": 9, "svg.fonttype": "none"})
    figure, axes = pyplot.subplots(figsize=(7.2, 2.8))
    return pyplot, figure, axes


def trend_chart(labels: list[str], series: list[tuple[str, list[int], str]], title: str) -> str:
    """Lines per series over months."""
    with _lock:
        pyplot, figure, axes = _figure()
        try:
            for name, points, colour in series:
                axes.plot(labels, points, marker="o", label=name, color=colour)
            axes.set_title(title)
            axes.set_ylim(bottom=0)
            axes.yaxis.get_major_locator().set_params(integer=True)
            axes.legend(loc="upper left", frameon=False)
            axes.grid(axis="y", alpha=0.3)
            axes.tick_params(axis="x", rotation=45)
            return _svg(figure)
        finally:
            pyplot.close(figure)


def bar_chart(labels: list[str], groups: list[tuple[str, list[float], str]], title: str) -> str:
    """Grouped bars (planned vs held, outcome shares)."""
    with _lock:
        pyplot, figure, axes = _figure()
        try:
            width = 0.8 / max(1, len(groups))
            for index, (name, points, colour) in enumerate(groups):
                positions = [x + index * width for x in range(len(labels))]
                axes.bar(positions, points, width=width, label=name, color=colour)
            axes.set_xticks([x + width * (len(groups) - 1) / 2 for x in range(len(labels))])
            axes.set_xticklabels(labels, rotation=30, ha="right")
            axes.set_title(title)
            axes.legend(loc="upper right", frameon=False)
            axes.grid(axis="y", alpha=0.3)
            return _svg(figure)
        finally:
            pyplot.close(figure)


def share_chart(parts: list[tuple[str, float, str]], title: str) -> str:
    """One horizontal bar per outcome, its share of the questions in percent."""
    with _lock:
        pyplot, figure, axes = _figure()
        try:
            labels = [label for label, _, _ in parts]
            values = [share * 100 for _, share, _ in parts]
            positions = list(range(len(parts)))
            axes.barh(positions, values, color=[colour for _, _, colour in parts])
            axes.set_yticks(positions)
            axes.set_yticklabels(labels)
            axes.invert_yaxis()
            axes.set_xlim(0, 100)
            axes.set_xlabel("%")
            for position, value in zip(positions, values, strict=True):
                axes.text(value + 1, position, f"{value:.1f}", va="center")
            axes.set_title(title)
            axes.grid(axis="x", alpha=0.3)
            return _svg(figure)
        finally:
            pyplot.close(figure)
