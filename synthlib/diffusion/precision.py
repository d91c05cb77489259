"""Half precision on GPUs: the frozen modules of training and the sampling passes.

On a CPU everything stays float32 (half precision is slow there and changes
results); ``diff_inference_dtype`` names the dtype used on CUDA.
"""

from __future__ import annotations

import torch

from synthlib.diffusion.model import DiffusionModelError

#: Dtypes the frozen modules and sampling may run at on CUDA (``diff_inference_dtype``).
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def device_dtype(name: str, device: torch.device | str) -> torch.dtype:
    """The dtype ``name`` (a ``DTYPES`` key, ``diff_inference_dtype``) on ``device``: itself on CUDA, float32 elsewhere.

    Half precision is for GPUs: on a CPU it is slow and changes results, so the
    CPU path always stays float32.
    """
    if name not in DTYPES:
        raise DiffusionModelError(f"diff_inference_dtype {name!r} unknown; valid: {', '.join(DTYPES)}")
    return DTYPES[name] if torch.device(device).type == "cuda" else torch.float32


def cast(modules: dict[str, torch.nn.Module], dtype: torch.dtype) -> dict[str, dict[str, torch.Tensor]]:
    """Cast ``modules`` to ``dtype``; returns float32 copies of their weights (on the CPU) to restore, or {} for float32.

    The copies make the cast lossless: the saved model keeps the exact float32
    weights it was given, not half-precision roundings of them.
    """
    if dtype == torch.float32:
        return {}
    originals = {name: {k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()} for name, m in modules.items()}
    for m in modules.values():
        m.to(dtype)
    return originals


def restore(modules: dict[str, torch.nn.Module], originals: dict[str, dict[str, torch.Tensor]]) -> None:
    """Undo ``cast``: the modules back in float32 with their original weights."""
    for name, state in originals.items():
        modules[name].to(torch.float32).load_state_dict(state)
