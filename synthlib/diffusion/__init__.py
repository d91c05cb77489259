"""Target-adapted diffusion: the model, stage 1 (appearance) and stage 2 (semantic conditioning).

- ``build`` / ``load`` / ``save``: Stable Diffusion's components (diffusers UNet,
  scheduler, CLIP text encoder and tokenizer, VAE; ControlNet after stage 2),
  loaded from a folder or hub id, or built from a named small config in pixel
  space (``CONFIGS``), always saved with ``save_pretrained``.
- ``pretrain.pretrain``: the embedded stand-in for an off-the-shelf model
  (stage ``diffusion/pretrain``, sources with colour jitter).
- ``stage1.train_stage1``: fine-tuning on the unlabelled target images
  (stage ``diffusion/stage1``), scored by ``scores.appearance``.
- ``stage2.train_stage2``: the ``controlnet`` or ``concat`` conditioning branch
  on (image, pseudo-label) pairs with erosion, depth and condition dropout
  (stage ``diffusion/stage2``), scored by ``scores.faithfulness``.
- ``generate``: label maps in, images out — what later stages call.
"""

from synthlib.diffusion import conditioning, pretrain, scores, stage1, stage2
from synthlib.diffusion.conditioning import ConditioningError, erode
from synthlib.diffusion.model import (
    BRANCHES,
    CONFIGS,
    DiffusionModel,
    DiffusionModelError,
    add_branch,
    build,
    load,
    save,
    small_tokenizer,
)
from synthlib.diffusion.sampling import generate
from synthlib.diffusion.stage1 import train_stage1
from synthlib.diffusion.stage2 import train_stage2
from synthlib.diffusion.train import DiffusionSettings

__all__ = [
    "BRANCHES",
    "CONFIGS",
    "ConditioningError",
    "DiffusionModel",
    "DiffusionModelError",
    "DiffusionSettings",
    "add_branch",
    "build",
    "conditioning",
    "erode",
    "generate",
    "load",
    "pretrain",
    "save",
    "scores",
    "small_tokenizer",
    "stage1",
    "stage2",
    "train_stage1",
    "train_stage2",
]
