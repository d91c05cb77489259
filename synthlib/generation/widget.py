"""The generation painter: an ipywidgets map painter that generates from what it paints."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from synthlib.datasets import Sample
from synthlib.diffusion.model import DiffusionModel
from synthlib.generation import generate_from
from synthlib.generation.compose import Shape, compose, ellipse, rect, street
from synthlib.labels import CLASS_NAMES, colorize
from synthlib.profiles import Profile


class Painter:
    """An ipywidgets painter: pick a class and a shape, place it with the sliders, paint, generate.

    ``widget`` is the box to display (a notebook shows the Painter itself);
    ``paint``, ``undo`` and ``generate`` are what the buttons call.
    """

    def __init__(self, model: DiffusionModel, cfg: Profile, base: Sequence[Shape] | None = None, seeds: Sequence[int] = (0, 1, 2), zoom: int = 4) -> None:
        import ipywidgets as w

        self.model, self.cfg, self.seeds, self.zoom = model, cfg, list(seeds), zoom
        self.shapes: list[Shape] = list(street() if base is None else base)
        self.images: np.ndarray | None = None
        self.cls = w.Dropdown(options=list(CLASS_NAMES), value="person", description="class")
        self.kind = w.ToggleButtons(options=["rect", "ellipse"], value="rect", description="shape")
        self.x = w.FloatRangeSlider(value=(0.45, 0.55), min=0, max=1, step=0.01, description="x")
        self.y = w.FloatRangeSlider(value=(0.55, 0.85), min=0, max=1, step=0.01, description="y")
        buttons = {name: w.Button(description=name) for name in ("paint", "undo", "generate")}
        buttons["paint"].on_click(lambda _: self.paint())
        buttons["undo"].on_click(lambda _: self.undo())
        buttons["generate"].on_click(lambda _: self.generate())
        self.buttons = buttons
        self.status = w.Label()
        self.map_view = w.Image(format="png")
        self.result = w.Image(format="png")
        for control in (self.cls, self.kind, self.x, self.y):
            control.observe(lambda _: self.redraw(), names="value")
        self.widget = w.VBox(
            [w.HBox([self.cls, self.kind]), self.x, self.y, w.HBox(list(buttons.values())), self.map_view, self.status, self.result]
        )
        self.redraw()

    def current(self) -> Shape:
        """The shape the controls describe."""
        (x0, x1), (y0, y1) = self.x.value, self.y.value
        return (rect if self.kind.value == "rect" else ellipse)(self.cls.value, x0, y0, x1, y1)

    def sample(self, preview: bool = False) -> Sample:
        """The painted map (with the shape under the controls when ``preview``)."""
        extra = [self.current()] if preview else []
        return compose(self.shapes + extra, self.cfg.height, self.cfg.width, base=[], name="painted")

    def paint(self) -> None:
        """Add the shape under the controls to the map."""
        self.shapes.append(self.current())
        self.redraw()

    def undo(self) -> None:
        """Remove the last painted shape."""
        if self.shapes:
            self.shapes.pop()
        self.redraw()

    def generate(self) -> np.ndarray:
        """Generate one image per seed from the painted map and show them."""
        self.status.value = "generating ..."
        sample = self.sample()
        self.images = generate_from(self.model, self.cfg, [sample] * len(self.seeds), self.seeds)
        self.result.value = _png(np.concatenate(list(self.images), 1), self.zoom)
        self.status.value = f"{len(self.images)} images, seeds {self.seeds}"
        return self.images

    def redraw(self) -> None:
        """Show the map with the shape under the controls."""
        self.map_view.value = _png(colorize(self.sample(preview=True).label), self.zoom)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def _png(image: np.ndarray, zoom: int) -> bytes:
    im = Image.fromarray(np.asarray(image, np.uint8))
    if zoom > 1:
        im = im.resize((im.width * zoom, im.height * zoom), Image.NEAREST)
    buffer = io.BytesIO()
    im.save(buffer, format="png")
    return buffer.getvalue()
