"""Figures and widgets the notebooks show: sample grids, class bars, a browser."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from synthlib.datasets import Dataset, Sample
from synthlib.labels import colorize

PANELS = ("image", "label", "depth", "instances")


def panel(sample: Sample, kind: str) -> np.ndarray | None:
    """An RGB-displayable array of one part of a sample, or None when it has none."""
    if kind == "image":
        return sample.image
    if kind == "label":
        return colorize(sample.label)
    if kind == "depth":
        return None if sample.depth is None else _normalise(np.log1p(sample.depth))
    if kind == "instances":
        if sample.instances is None:
            return None
        ids = np.unique(sample.instances, return_inverse=True)[1].reshape(sample.instances.shape)
        colours = np.random.default_rng(0).integers(40, 256, (ids.max() + 1, 3)).astype(np.uint8)
        colours[0] = 0
        return colours[ids]
    raise ValueError(f"panel kind {kind!r} unknown; valid: {', '.join(PANELS)}")


def sample_grid(
    datasets: Mapping[str, Dataset] | Dataset,
    n: int = 4,
    panels: Sequence[str] = ("image", "label", "depth"),
    start: int = 0,
    cell_inches: float = 2.2,
) -> plt.Figure:
    """A grid: one row per (dataset, sample), one column per panel."""
    if isinstance(datasets, Dataset):
        datasets = {getattr(datasets, "name", "dataset"): datasets}
    rows = [(name, ds[i]) for name, ds in datasets.items() for i in range(start, min(start + n, len(ds)))]
    if not rows:
        raise ValueError("sample_grid: the datasets are empty")
    aspect = rows[0][1].image.shape[1] / rows[0][1].image.shape[0]
    fig, axes = plt.subplots(
        len(rows), len(panels), figsize=(cell_inches * aspect * len(panels), cell_inches * len(rows)), squeeze=False
    )
    for r, (name, sample) in enumerate(rows):
        for c, kind in enumerate(panels):
            ax = axes[r, c]
            data = panel(sample, kind)
            if data is not None:
                ax.imshow(data, cmap="magma" if kind == "depth" else None, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(kind)
            if c == 0:
                ax.set_ylabel(f"{name}\n{sample.id[-12:]}", fontsize=7)
    fig.tight_layout()
    return fig


#: A grid panel: an image (RGB, or a map already coloured), a (title, image) pair, or None (left empty).
Panel = np.ndarray | tuple[str, np.ndarray | None] | None


def image_grid(rows: Sequence[tuple[str, Sequence[Panel]]], columns: Sequence[str] = (), cell_inches: float = 1.6) -> plt.Figure:
    """One row per ``(row label, panels)``; ``columns`` titles the first row, a (title, image) panel titles itself.

    The figures of every stage (predictions, translations, generations, rectification) are this grid.
    """
    if not rows:
        raise ValueError("image_grid: no rows to show")
    width = max(len(panels) for _, panels in rows)
    shown = [p[1] if isinstance(p, tuple) else p for _, panels in rows for p in panels]
    first = next((x for x in shown if x is not None), None)
    aspect = first.shape[1] / first.shape[0] if first is not None else 2.0
    fig, axes = plt.subplots(len(rows), width, figsize=(cell_inches * aspect * width, cell_inches * len(rows) + 0.3), squeeze=False)
    for r, (label, panels) in enumerate(rows):
        for c, ax in enumerate(axes[r]):
            title, image = panels[c] if c < len(panels) and isinstance(panels[c], tuple) else ("", panels[c] if c < len(panels) else None)
            if image is not None:
                ax.imshow(image, interpolation="nearest")
            title = title or (columns[c] if r == 0 and c < len(columns) else "")
            if title:
                ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(image is not None)
        axes[r, 0].set_ylabel(label, fontsize=7)
    fig.tight_layout()
    return fig


def class_frequency_plot(table: pd.DataFrame, measure: str = "pixels %", log: bool = True) -> plt.Figure:
    """Grouped bars of ``data.class_frequencies``: classes on x, one bar per dataset."""
    values = table.xs(measure, axis=1, level="measure")
    fig, ax = plt.subplots(figsize=(12, 3.5))
    values.plot.bar(ax=ax, logy=log, width=0.8)
    ax.set_ylabel(measure)
    ax.set_xlabel("")
    ax.legend(fontsize=8, ncols=min(len(values.columns), 6))
    fig.tight_layout()
    return fig


def browse(datasets: Mapping[str, Dataset], panels: Sequence[str] = ("image", "label", "depth")):
    """An ipywidgets browser: pick a dataset and an index, see its panels.

    The view is an ``Image`` widget holding a PNG, not a plot inside an ``Output``
    widget (what ``ipywidgets.interactive`` uses). Headless runners (papermill,
    nbval: nbclient) mirror an Output widget's outputs back to the kernel over the
    shell channel while they wait on that channel for the cell's reply; with a large
    figure the reply is never seen and the run hangs with the kernel idle. An Image
    widget's value only travels from the kernel to the client.
    """
    import ipywidgets as widgets

    names = list(datasets)
    if not names:
        raise ValueError("browse: no datasets to show")
    choose = widgets.Dropdown(options=names, description="dataset")
    index = widgets.IntSlider(min=0, max=max(len(datasets[names[0]]) - 1, 0), description="index")
    view = widgets.Image(format="png")

    def show(_change=None) -> None:
        dataset = datasets[choose.value]
        index.max = max(len(dataset) - 1, 0)
        fig = sample_grid({choose.value: dataset}, n=1, start=min(index.value, index.max), panels=panels, cell_inches=3)
        view.value = figure_png(fig)
        plt.close(fig)

    choose.observe(show, names="value")
    index.observe(show, names="value")
    show()
    return widgets.VBox([widgets.HBox([choose, index]), view])


def figure_png(fig: plt.Figure, dpi: int = 80) -> bytes:
    """A figure as PNG bytes (for Image widgets)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _normalise(x: np.ndarray) -> np.ndarray:
    lo, hi = np.nanpercentile(x, 1), np.nanpercentile(x, 99)
    return np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1)
