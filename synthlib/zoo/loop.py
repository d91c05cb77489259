"""The zoo's one training loop: resumable, guarded against divergence, with a progress bar.

Each builder supplies a ``step`` function (the loss of one batch, drawn from
the step number alone) and the modules it trains; this loop owns the optimiser,
accelerate's device placement, checkpoints (``synthlib.checkpoints``) and the
history. Resuming after a crash continues from the last checkpoint with the
same batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from synthlib import checkpoints as checkpoints_io

CHECKPOINT_EVERY = 250


def train(
    what: str,
    modules: Sequence[torch.nn.Module],
    step: Callable[[Accelerator, int], torch.Tensor],
    steps: int,
    lr: float,
    checkpoints: Path,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train ``modules`` for ``steps`` AdamW steps of ``step(accelerator, i)`` (the loss); returns the history.

    Learning rate: linear warm-up over the first 5 % of steps, then cosine decay to 0
    (transformers' schedule), as image pretraining does.
    """
    from transformers import get_cosine_schedule_with_warmup

    accelerator = Accelerator()
    set_seed(seed)
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, steps // 20), steps)
    prepared = accelerator.prepare(*modules, optimizer, schedule)
    optimizer = prepared[len(modules)]
    history: dict[str, list[float]] = {"loss": [], "step_seconds": []}
    start = checkpoints_io.resume(accelerator, checkpoints, history, what=what)
    guard = checkpoints_io.Guard(what, checkpoints, steps, accelerator)
    for m in modules:
        m.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=what, disable=not progress)
    for i in bar:
        began = time.perf_counter()
        loss = step(accelerator, i)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        guard.check(i, {"loss": value}, lambda: params)
        history["loss"].append(value)
        history["step_seconds"].append(time.perf_counter() - began)
        bar.set_postfix(loss=f"{np.mean(history['loss'][-20:]):.4f}")
        done = i + 1
        if done % CHECKPOINT_EVERY == 0 and done < steps:
            guard.save(accelerator, done, history, params)
    guard.finish(steps, params)
    for m in modules:
        m.eval()
    return history
