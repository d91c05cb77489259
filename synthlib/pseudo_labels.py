"""Stage 01: pseudo-labels for the unlabelled target images.

Input: source datasets with labels, target images. Trains the UDA baselines
(source only, ADVENT, ROAD-Net, self-training) and measures each on target
val and by the quality of the pseudo-labels it would produce on target train
(where target labels exist: minicity, Cityscapes). Labeller ``colour`` is
source only trained on stage ``recoloured``: every source's train images, each
given a target image's Lab colour statistics (``synthlib.colour``). Then the
chosen labeller writes stage ``pseudo_labels``: target images with predicted trainIds
(pixels under the confidence threshold set to 255) in the Cityscapes layout,
plus ``confidence/<split>/<id>_confidence.png`` (max softmax x 255).
The target labels are used for measurement only, never for training.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from synthlib.colour import colour_transfer
from synthlib.datasets import Dataset, Sample, write_cityscapes
from synthlib.fingerprints import weights_fingerprint
from synthlib.labels import IGNORE, colorize
from synthlib.metrics import ConfusionMatrix
from synthlib.profiles import Profile
from synthlib.runs import RunDir
from synthlib.segmenters import fit as seg
from synthlib.segmenters import predict
from synthlib.segmenters.infer import batch_of, window_of
from synthlib.segmenters.model import load, to_accelerator
from synthlib.viz import image_grid

STAGE = "pseudo_labels"
#: The labeller trained on the recoloured sources, and the dataset stage it trains on.
COLOUR, RECOLOURED = "colour", "recoloured"
#: Its row in the quality table.
COLOUR_LABEL = "source only, Lab-recoloured"


def train_baselines(run_dir: RunDir, cfg: Profile) -> dict[str, str]:
    """Train source-only on every source, each UDA method on ``uda_source``, and the oracle.

    Returns display name -> model stage.
    """
    target = f"data/{cfg.target}"
    jobs = {f"source only ({source})": (f"data/{source}", "supervised", None) for source in cfg.sources}
    jobs |= {f"{seg.LABELS[m]} ({cfg.uda_source})": (f"data/{cfg.uda_source}", m, target) for m in cfg.uda_methods}
    if cfg.pseudo_labeller == COLOUR:
        recolour(run_dir, cfg)
        jobs[f"{COLOUR_LABEL} ({'+'.join(cfg.sources)})"] = (RECOLOURED, "supervised", None)
    jobs[f"oracle ({cfg.target})"] = (target, "supervised", None)
    seg.fit_many(run_dir, cfg, list(jobs.values()))  # seg_workers at a time
    return {name: seg.model_stage(method, train_set) for name, (train_set, method, _) in jobs.items()}


def quality(run_dir: RunDir, cfg: Profile, models: dict[str, str]) -> pd.DataFrame:
    """mIoU of each model on target val, and of its pseudo-labels on target train (19/16/13-class means)."""
    target = f"data/{cfg.target}"
    rows = {}
    for name, stage in models.items():
        table = seg.evaluate(run_dir, cfg, stage, [f"{target}:val", f"{target}:train"])
        rows[name] = {
            "target val mIoU": table.loc[f"{target}:val", "mIoU"],
            "pseudo-label mIoU (target train)": table.loc[f"{target}:train", "mIoU"],
            "pseudo-label pixel acc": table.loc[f"{target}:train", "pixel_acc"],
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("pseudo-labeller")


def labeller_stage(cfg: Profile, labeller: str | None = None) -> str | None:
    """The model stage of a method name or ``colour``, or None when the labeller is an external folder / hub id."""
    labeller = labeller or cfg.pseudo_labeller
    if labeller == COLOUR:
        return seg.model_stage("supervised", RECOLOURED)
    if labeller in seg.METHODS:
        return seg.model_stage(labeller, f"data/{cfg.uda_source}")
    return None


def train_labeller(run_dir: RunDir, cfg: Profile, labeller: str | None = None) -> str | None:
    """Train (or reuse) the model stage of a method name or ``colour``; None for a folder / hub id."""
    labeller = labeller or cfg.pseudo_labeller
    if labeller == COLOUR:
        recolour(run_dir, cfg)
        seg.fit(run_dir, cfg, RECOLOURED, "supervised")
    elif labeller in seg.METHODS:
        seg.fit(run_dir, cfg, f"data/{cfg.uda_source}", labeller, target=f"data/{cfg.target}")
    return labeller_stage(cfg, labeller)


def recolour(run_dir: RunDir, cfg: Profile) -> Path:
    """Stage ``recoloured``: every source's train images, each with the Lab colour statistics of a target train image.

    The reference is drawn from the target's train images by the seed and the
    image's index in its source, so a re-run writes the same images; labels stay, ids get the
    source's name in front (two sources may share ids). Source only trained on it is
    labeller ``colour``: on minicity a better pseudo-labeller than the UDA methods
    (benchmarks/generation_downstream.py).
    """
    target = f"data/{cfg.target}"
    sources = [f"data/{source}" for source in cfg.sources]
    params = {"sources": list(cfg.sources), "target": cfg.target, "seed": cfg.seed}

    def build(ctx):
        if not ctx.is_main:  # one process writes the set; the others wait for it at the end of the stage
            return
        images = Recoloured(
            {s.removeprefix("data/"): run_dir.dataset(s, "train") for s in sources},
            run_dir.dataset(target, "train"),
            cfg.seed,
        )
        write_cityscapes(images, ctx.out, "train")
        ctx.info["train_images"] = len(images)

    return run_dir.stage(RECOLOURED, params, build, inputs=[*sources, target])


def make(run_dir: RunDir, cfg: Profile, labeller: str | None = None, threshold: float | None = None) -> Path:
    """Write stage ``pseudo_labels`` for target train and val with the chosen labeller."""
    labeller = labeller or cfg.pseudo_labeller
    threshold = cfg.pseudo_threshold if threshold is None else threshold
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"pseudo-label threshold {threshold} must lie in [0, 1]")
    stage = train_labeller(run_dir, cfg, labeller)
    target = f"data/{cfg.target}"
    window = window_of(cfg)
    params = {"labeller": labeller, "threshold": threshold, "window": window}
    weights = None if stage else weights_fingerprint(labeller)
    if weights is not None:  # a folder / cached hub id: new weights at the same path re-run the stage
        params["labeller_weights"] = weights

    def build(ctx):
        if not ctx.is_main:  # one process writes the pseudo-labels; the others wait for it at the end of the stage
            return
        model = seg.load_model(run_dir, stage) if stage else to_accelerator(load(labeller))
        for split in ("train", "val"):
            confidence_dir = ctx.out / "confidence" / split
            labelled = PseudoLabelled(run_dir.dataset(target, split), model, threshold, confidence_dir, window=window, batch=batch_of(cfg))
            write_cityscapes(labelled, ctx.out, split)
            ctx.info[split] = {"images": len(labelled), **labelled.quality.summary()}

    inputs = ([stage] if stage else []) + [target]
    return run_dir.stage(STAGE, params, build, inputs=inputs)


def grid(run_dir: RunDir, cfg: Profile, n: int = 4, split: str = "train"):
    """Image | pseudo-label | confidence | ground truth (where the target has labels), one row per image."""
    pseudo = run_dir.dataset(STAGE, split)
    truth = run_dir.dataset(f"data/{cfg.target}", split)
    n = min(n, len(pseudo))
    rows = []
    for r in range(n):
        s, t = pseudo[r], truth[r]
        shown = (plt.cm.viridis(confidence(run_dir, split, s.id))[..., :3] * 255).astype(np.uint8)  # max softmax in [0, 1]
        rows.append(("", [s.image, colorize(s.label), shown, colorize(t.label)]))
    return image_grid(rows, ("image", "pseudo-label", "confidence", "ground truth"), cell_inches=2)


def confidence(run_dir: RunDir, split: str, sample_id: str) -> np.ndarray:
    """The stored confidence map (0-1) of one pseudo-labelled sample."""
    path = run_dir.stage_path(STAGE) / "confidence" / split / f"{sample_id}_confidence.png"
    return np.asarray(Image.open(path), np.float32) / 255.0


def threshold_labels(labels: np.ndarray, confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels whose confidence is below ``threshold`` become ignore (255)."""
    return np.where(confidence < threshold, IGNORE, labels).astype(np.uint8)


class PseudoLabelled(Dataset):
    """Target images with a model's predictions as labels, predicted a batch at a time on demand.

    ``batch_size`` images are predicted at a time; ``window`` and ``batch`` (the profile's:
    ``segmenters.infer.window_of``, ``batch_of``) as ``segmenters.predict``'s.

    Accumulates the predictions' confusion matrix against the target labels
    (``quality``, each image once) and writes each confidence map as a PNG into
    ``confidence_dir`` as it goes.
    """

    def __init__(
        self, images: Dataset, model, threshold: float, confidence_dir: Path, batch_size: int = 16, window=None, batch: int | None = None
    ) -> None:
        self.images, self.model, self.threshold, self.batch_size, self.window, self.batch = images, model, threshold, batch_size, window, batch
        self.confidence_dir = Path(confidence_dir)
        self.confidence_dir.mkdir(parents=True, exist_ok=True)
        self.name = f"pseudo-labels of {getattr(images, 'name', 'target')}"
        self.quality = ConfusionMatrix()
        self._seen: set[str] = set()
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        index = self._check_index(index)
        if index not in self._cache:
            self._predict_batch(index)
        return self._cache[index]

    def _predict_batch(self, start: int) -> None:
        samples = [self.images[i] for i in range(start, min(start + self.batch_size, len(self.images)))]
        pred, conf = predict(self.model, np.stack([s.image for s in samples]), self.window, batch=self.batch)
        self._cache = {}
        for offset, (s, p, c) in enumerate(zip(samples, pred, conf, strict=True)):
            if s.id not in self._seen:
                self._seen.add(s.id)
                self.quality.update(p, s.label)
                Image.fromarray(np.round(c * 255).astype(np.uint8)).save(self.confidence_dir / f"{s.id}_confidence.png", compress_level=1)
            self._cache[start + offset] = Sample(s.image, threshold_labels(p, c, self.threshold), s.depth, None, s.id, s.meta)


class Recoloured(Dataset):
    """The samples of several source datasets, each image Lab colour-transferred to a reference target image.

    Sample ``i`` of source ``name`` takes the target image drawn by ``[seed, 6, i]``
    (the same draw in every run) and gets the id ``<name>_<id>``; depth and
    instances are dropped, as only a segmenter trains on it.
    """

    def __init__(self, sources: dict[str, Dataset], references: Dataset, seed: int) -> None:
        if not sources or not len(references):
            raise ValueError("recolouring needs at least one source dataset and one target image")
        self.sources, self.references, self.seed = sources, references, seed
        self.name = f"{'+'.join(sources)} recoloured to {getattr(references, 'name', 'the target')}"
        self._index = [(name, i) for name, dataset in sources.items() for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> Sample:
        name, i = self._index[self._check_index(index)]
        s = self.sources[name][i]
        ref = self.references[int(np.random.default_rng([self.seed, 6, i]).integers(len(self.references)))].image
        return Sample(colour_transfer(s.image[None], [ref])[0], s.label, None, None, f"{name}_{s.id}", s.meta)
