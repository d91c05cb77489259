"""Import mmsegmentation on mmcv-lite: the one place that knows what that takes.

mmsegmentation 1.2.2 imports ``mmcv.ops`` at module level (focal loss, point sampling,
heads we never build), and ``mmcv.ops`` needs mmcv's compiled extension, which
mmcv-lite does not ship and pip cannot build without a matching CUDA toolchain. A stub
``mmcv.ops`` whose members raise when called lets mmseg import; SegFormer (the only model
built here) uses none of them. Separately, mmengine's checkpoints hold more than tensors,
so resuming one needs torch's full unpickler: ``full_unpickler`` allows it
(``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) only while the backend's own training runs, which
loads only checkpoints it wrote itself.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types
import warnings
from collections.abc import Iterator

#: What mmseg 1.2.2 imports from mmcv.ops (none of it is used by SegFormer).
_OPS = ("point_sample", "sigmoid_focal_loss", "CrissCrossAttention", "PSAMask", "DeformConv2d", "ModulatedDeformConv2d", "SyncBatchNorm")


class MMSegUnavailable(ImportError):
    """The optional mmsegmentation backend is not installed."""


def import_mmseg() -> types.ModuleType:
    """``mmseg`` with its modules registered, importable on mmcv-lite; a clear error if the extra is missing."""
    try:
        importlib.import_module("mmcv")
        importlib.import_module("mmengine")
    except ImportError as e:
        raise MMSegUnavailable(
            f"the mmseg backend needs the 'mmseg' extra (pip install -e \".[mmseg]\"): {e}"
        ) from e
    if "mmcv.ops" not in sys.modules:
        try:
            importlib.import_module("mmcv.ops")
        except ImportError:  # mmcv-lite: no compiled ops
            sys.modules["mmcv.ops"] = _stub_ops()
    try:
        with warnings.catch_warnings():  # mmcv-lite says it has no deformable attention; SegFormer does not use it
            warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")
            mmseg = importlib.import_module("mmseg")
            importlib.import_module("mmseg.models")
            importlib.import_module("mmseg.datasets")
        from mmseg.utils import register_all_modules
    except ImportError as e:
        raise MMSegUnavailable(f"the mmseg backend needs the 'mmseg' extra (pip install -e \".[mmseg]\"): {e}") from e
    register_all_modules(init_default_scope=True)
    return mmseg


@contextlib.contextmanager
def full_unpickler() -> Iterator[None]:
    """torch.load with the full unpickler inside the block (mmengine's own checkpoints), as before it outside."""
    before = os.environ.get(_FULL_UNPICKLER)
    os.environ[_FULL_UNPICKLER] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_FULL_UNPICKLER, None)
        else:
            os.environ[_FULL_UNPICKLER] = before


_FULL_UNPICKLER = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


def _stub_ops() -> types.ModuleType:
    ops = types.ModuleType("mmcv.ops")
    ops.__doc__ = "Stub: mmcv-lite has no compiled ops (see synthlib.segmenters.mmseg_compat)."

    def missing(name: str):
        def call(*args, **kwargs):
            raise NotImplementedError(f"mmcv.ops.{name} needs the full mmcv build; mmcv-lite has no compiled ops")

        return call

    for name in _OPS:
        setattr(ops, name, missing(name))
    return ops
