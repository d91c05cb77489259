"""Multi-GPU training and generation through ``accelerate launch``, proven on the CPU (two gloo processes).

One script trains the stage-2 conditioning branch (micro ControlNet), a segmenter with
ADVENT and ROAD's spatial term, and a CycleGAN for a few steps each, then generates a
set with a latent (Stable Diffusion + ControlNet) stage-2 model. It runs once without
the launcher (one process) and once under ``accelerate launch --num_processes 2``;
each process records, per training loop, the learning rate at every optimiser step
and after the last one, which modules DDP wrapped, its losses and a checksum of the
trained weights. The module fixture runs both once: the launches dominate the time.
"""

import json
import os
import subprocess
import sys

import pytest

from synthlib import diffusion, generation, runs, tiny_hub
from synthlib.datasets import write_cityscapes
from tests.test_generation import images_of, toy_maps
from tests.test_runs import accelerate_launch

STEPS = {"diffusion": 4, "segmenter": 3, "cyclegan": 3}
MAPS = 5  # 10 images in batches of 3: 4 batches, shared out 2 + 2

_TRAIN_AND_GENERATE = """
import hashlib, json, sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.optimizer import register_optimizer_step_pre_hook

from synthlib import diffusion, generation, profiles, runs
from synthlib.datasets import open_dataset
from synthlib.diffusion.train import DiffusionSettings, Examples
from synthlib.diffusion.train import train as train_diffusion
from synthlib.segmenters.model import build as build_segmenter
from synthlib.segmenters.train import TrainSettings
from synthlib.segmenters.train import train as train_segmenter
from synthlib.translation.cyclegan import CycleGAN, CycleGANSettings
from synthlib.translation.cyclegan import train as train_cyclegan

root, run_name = Path(sys.argv[1]), sys.argv[2]
steps = json.loads(sys.argv[3])
state = runs.processes()  # as the stages and loops see it (honours ACCELERATE_USE_CPU; a bare PartialState() would not)

lrs = {}  # optimiser -> its learning rate at each update it makes (an accumulation micro-step makes none)
register_optimizer_step_pre_hook(lambda opt, args, kwargs: lrs.setdefault(opt, []).append(opt.param_groups[0]["lr"]))
wrapped = []  # the modules accelerate.prepare wrapped in DDP
ddp_init = DistributedDataParallel.__init__

def spy(self, module, *args, **kwargs):
    wrapped.append(type(module).__name__)
    ddp_init(self, module, *args, **kwargs)

DistributedDataParallel.__init__ = spy

def record(train):
    lrs.clear()
    wrapped.clear()
    history = train()
    digest = hashlib.sha256()
    for opt in lrs:
        for group in opt.param_groups:
            for p in group["params"]:
                digest.update(p.detach().cpu().numpy().tobytes())
    return {
        "lrs": list(lrs.values()),
        "final_lrs": [opt.param_groups[0]["lr"] for opt in lrs],
        "ddp": sorted(wrapped),
        "weights": digest.hexdigest(),
        "losses": {k: v for k, v in history.items() if k != "step_seconds"},
    }

source = open_dataset("minicity", None, "train", n=4, style="game", height=32, width=64)
target = open_dataset("minicity", None, "train", n=4, style="real", height=32, width=64)

def stage2():
    model = diffusion.add_branch(diffusion.build("micro", (8, 16), "a city street", seed=0), "controlnet", depth=False)
    s = DiffusionSettings(steps=steps["diffusion"], batch_size=2, grad_accum=2, warmup_steps=2, mixed_precision=False,
                          checkpoint_every=0, erosion=1, p_uncond=0.2)
    examples = Examples([(target, 0)], model.resolution, s, {"size": model.condition_size, "depth": None})
    return train_diffusion(model, examples, [model.prompt], s, progress=False)

def segmenter():
    s = TrainSettings(steps=steps["segmenter"], batch_size=2, grad_accum=2, warmup_steps=1, crop=(32, 64),
                      mixed_precision=False, checkpoint_every=0, advent=True, road_dst=True, road_spt=True)
    return train_segmenter(build_segmenter("zoo:mit-tiny-s2", seed=0), source, s, target=target, progress=False)

def cyclegan():
    s = CycleGANSettings(ngf=8, ndf=8, blocks=1, disc_layers=2, steps=steps["cyclegan"], decay_steps=2, batch_size=2,
                         buffer_size=4, checkpoint_every=0, mixed_precision=False)
    return train_cyclegan(CycleGAN.build(s), source, target, s, progress=False)

build_segmenter("zoo:mit-tiny-s2", seed=0)  # a zoo model built on first use trains its own optimiser: not in the recorded loops
result = {"processes": state.num_processes, "distributed": state.distributed_type.value}
for name, loop in (("diffusion", stage2), ("segmenter", segmenter), ("cyclegan", cyclegan)):
    result[name] = record(loop)

cfg = profiles.load("smoke", gen_sources=["toy"], gen_per_map=2, gen_batch=3, gen_steps=2, gen_max_maps=0)
generation.generate_set(runs.open(run_name, root), cfg, "toy")
(root / f"{run_name}-{state.process_index}.json").write_text(json.dumps(result))
"""


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The script's records of one process and of two launched ones: ``{"one": [rank 0], "two": [rank 0, rank 1]}``."""
    root = tmp_path_factory.mktemp("multiprocess")
    model = diffusion.build(str(tiny_hub.write_stable_diffusion(root / "sd")), (16, 32), "a city street")
    diffusion.save(diffusion.add_branch(model, "controlnet", depth=False), root / "stage2")
    for name in ("one", "two"):
        run_dir = runs.open(name, root)
        run_dir.stage(
            "data/toy",
            {"n": MAPS},
            lambda ctx: write_cityscapes(toy_maps(MAPS, (16, 32)), ctx.out, "train", progress=False),
        )
        run_dir.stage(
            generation.MODEL_STAGE,
            {"test": 1},
            lambda ctx: diffusion.save(diffusion.load(root / "stage2"), ctx.out / "model"),
        )
    script = root / "train_and_generate.py"
    script.write_text(_TRAIN_AND_GENERATE)
    single = subprocess.run(
        [sys.executable, str(script), str(root), "one", json.dumps(STEPS)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert single.returncode == 0, f"the one-process run failed:\n{single.stdout}\n{single.stderr}"
    accelerate_launch(script, root, "two", json.dumps(STEPS))
    records = {
        name: [json.loads((root / f"{name}-{rank}.json").read_text()) for rank in range(n)]
        for name, n in (("one", 1), ("two", 2))
    }
    records["root"] = root
    return records


@pytest.mark.parametrize("loop", list(STEPS))
def test_two_processes_step_the_learning_rates_of_one(launched, loop):
    (one,), two = launched["one"], launched["two"]
    assert one["processes"] == 1 and all(r["processes"] == 2 and r["distributed"] == "MULTI_CPU" for r in two)
    reference = one[loop]
    # One update per step and optimiser (diffusion and segmenter accumulate two micro-batches per update).
    assert all(len(lrs) == STEPS[loop] for lrs in reference["lrs"])
    for rank in two:
        assert rank[loop]["lrs"] == reference["lrs"]  # the whole schedule, step by step, every optimiser
        assert rank[loop]["final_lrs"] == reference["final_lrs"]  # and where it ends after the last step
    # The schedules are not constant: warm-up and cosine (diffusion), poly (segmenter) or linear decay (CycleGAN) show.
    assert len(set(reference["lrs"][0])) > 1


def test_advent_road_cyclegan_and_stage2_steps_run_under_ddp_and_keep_the_replicas_equal(launched):
    (one,), (rank0, rank1) = launched["one"], launched["two"]
    expected = {
        "diffusion": ["ControlNetModel"],
        "segmenter": ["EntropyDiscriminator", "SegformerForSemanticSegmentation", "SpatialDomainClassifier"],
        "cyclegan": ["PatchDiscriminator", "PatchDiscriminator", "ResnetGenerator", "ResnetGenerator"],
    }
    for loop, modules in expected.items():
        assert one[loop]["ddp"] == [] and rank0[loop]["ddp"] == rank1[loop]["ddp"] == modules, loop
        # The terms of one process (adv, minent, disc, road_spt; cycle, identity...), once per step.
        assert set(rank0[loop]["losses"]) == set(one[loop]["losses"]), loop
        assert all(len(v) == STEPS[loop] for v in rank0[loop]["losses"].values()), loop
        # Each process trained on its own share of the batches, yet the weights agree: DDP averaged the gradients.
        assert rank0[loop]["losses"] != rank1[loop]["losses"], loop
        assert rank0[loop]["weights"] == rank1[loop]["weights"], loop
    assert {"minent", "adv", "disc", "road_dst", "road_spt"} <= set(rank0["segmenter"]["losses"])


def test_two_processes_generate_the_latent_controlnet_set_of_one_image_for_image(launched):
    root = launched["root"]
    one, two = runs.open("one", root), runs.open("two", root)
    assert two.manifest("generated/toy")["info"]["batches_per_process"] == [2, 2]
    assert one.manifest("generated/toy")["info"]["batches_per_process"] == [4]
    assert diffusion.load(one.stage_path(generation.MODEL_STAGE) / "model").space == "latent"

    def files(run_dir):
        folder = run_dir.stage_path("generated/toy")
        return {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json"
        }

    made, reference = files(two), files(one)
    assert sorted(made) == sorted(reference)
    assert [name for name in made if made[name] != reference[name]] == []  # byte for byte: images, labels, meta, table
    assert sorted(images_of(two, "generated/toy")) == [f"toy_{i:03d}_gen{k}" for i in range(MAPS) for k in range(2)]
