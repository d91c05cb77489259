"""Segmenters shared by every stage that trains or applies one.

SegFormer (transformers) built from a named config or loaded by path / hub id
(`model`), a training loop on accelerate with the UDA methods as switches
(`train`, `uda`), and whole-image / sliding-window inference and evaluation
(`infer`). Stages 01 (pseudo-labels) and 06 (segmentation) call into here.
"""

from synthlib.segmenters.infer import evaluate, predict, predict_proba
from synthlib.segmenters.model import ARCHITECTURES, build, load, save
from synthlib.segmenters.train import TrainSettings, train

__all__ = ["ARCHITECTURES", "TrainSettings", "build", "evaluate", "load", "predict", "predict_proba", "save", "train"]
