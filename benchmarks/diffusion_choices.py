"""The measurements behind the embedded profile's diffusion choices: branch, resolution, prediction, erosion, depth.

    python benchmarks/diffusion_choices.py --run default --profile default --variants profile controlnet
    python benchmarks/diffusion_choices.py --run default --variants res64 eps erosion1 nodepth
    python benchmarks/diffusion_choices.py --run default --variants profile patch2 prior prior-controlnet

Needs a run whose stages 00 and 01 are done (data, the oracle and the
pseudo-labels). Each variant changes a few profile fields. Variants run in
run directories ``<run>-bench-<hash of the fields that decide pretraining and
stage 1>`` whose data, oracle, pseudo-label (and, where current, pretraining
and stage-1) stages are symbolic links to the source run's, so variants that
change stage 2 only reuse the source run's stage 1, and nothing of the source
run is written.
Prints faithfulness, appearance and wall seconds per stage, and adds the rows
to ``<run>/tables/diffusion_choices.{csv,md}`` (rows of earlier calls stay).
"""

from __future__ import annotations

import argparse
import hashlib
import json

import pandas as pd

from synthlib import diffusion, profiles, report, runs
from synthlib.diffusion.common import judge_stage

#: name -> profile overrides. Stage-2-only variants keep pretraining and stage 1.
VARIANTS: dict[str, dict] = {
    "profile": {},
    "concat": {"diff_branch": "concat"},
    "controlnet": {"diff_branch": "controlnet"},
    "erosion0": {"diff_erosion": 0},
    "erosion1": {"diff_erosion": 1},
    "erosion2": {"diff_erosion": 2},
    "nodepth": {"diff_depth": False},
    "depth": {"diff_depth": True},
    "puncond0": {"diff_p_uncond": 0.0},
    "res64": {"diff_resolution": [64, 128]},
    "patch2": {"diff_resolution": [64, 128], "diff_patch": 2},
    "eps": {"diff_prediction": "epsilon"},
    "nopretrain": {"diff_pretrain_steps": 0},
    # the zoo's latent diffusion prior (a tiny Stable Diffusion) at the world's full resolution
    "prior": {"diff_model": "zoo:prior", "diff_resolution": [64, 128]},
    "prior-controlnet": {"diff_model": "zoo:prior", "diff_resolution": [64, 128], "diff_branch": "controlnet"},
    "prior-lr2e-4": {"diff_model": "zoo:prior", "diff_resolution": [64, 128], "diff_lr": 2e-4},
    # latent steps cost about a third of pixel ones at 32x64: the pixel model's wall time spent on steps
    "prior-long": {"diff_model": "zoo:prior", "diff_resolution": [64, 128], "diff_stage1_steps": 900, "diff_stage2_steps": 2400},
}
_UPSTREAM = ("diff_model", "diff_resolution", "diff_patch", "diff_prediction", "diff_pretrain_steps", "diff_stage1_steps", "diff_lr", "diff_batch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="default", help="the run with stages 00 and 01 done")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--variants", nargs="+", default=["concat", "controlnet"], choices=list(VARIANTS))
    parser.add_argument("--set", default="{}", help='JSON profile overrides for every variant, e.g. \'{"diff_stage2_steps": 400}\'')
    args = parser.parse_args()
    source = runs.open(args.run)
    common = json.loads(args.set)
    rows = {}
    for name in args.variants:
        cfg = profiles.load(args.profile, **{**common, **VARIANTS[name]})
        upstream = "-".join(str(getattr(cfg, f)).replace(" ", "").replace(",", "x").strip("()[]") for f in _UPSTREAM)
        run_dir = _linked_run(source, f"{args.run}-bench-{hashlib.sha256(upstream.encode()).hexdigest()[:8]}", cfg)
        stage = f"diffusion/stage2-{name}"
        diffusion.pretrain.pretrain(run_dir, cfg)  # each made only when not cached (a stage never builds what it reads)
        diffusion.train_stage1(run_dir, cfg)
        diffusion.train_stage2(run_dir, cfg, stage=stage)
        # Build seconds of each stage (a cached stage reports the time it took when it was made).
        times = {f"{label} s": (run_dir.manifest(st) or {}).get("seconds", 0.0) for label, st in
                 (("pretrain", diffusion.pretrain.STAGE), ("stage1", diffusion.stage1.STAGE), ("stage2", stage))}
        info1, info2 = run_dir.manifest(diffusion.stage1.STAGE)["info"], run_dir.manifest(stage)["info"]
        key = name if not common else f"{name} {json.dumps(common)}"
        rows[key] = {
            "overrides": json.dumps({**common, **VARIANTS[name]}),
            "faithfulness untrained": info2["faithfulness_untrained"]["mIoU"],
            "faithfulness trained": info2["faithfulness"]["mIoU"],
            "faithfulness of real target images": info2["faithfulness_reference"]["mIoU"],
            "pixel acc trained": info2["faithfulness"]["pixel_acc"],
            "appearance before": info1["appearance"]["before"],
            "appearance after": info1["appearance"]["after"],
            "unknown share": info2["unknown_share"],
            **times,
            "stage2 s/step": info2["median_step_seconds"],
        }
        print(key, rows[key], flush=True)
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")
    previous = source.path / report.TABLES / "diffusion_choices.csv"
    if previous.is_file():  # rows of earlier calls stay, re-measured rows replace theirs
        old = pd.read_csv(previous, index_col=0)
        table = pd.concat([old.drop(index=[k for k in table.index if k in old.index]), table])
    print(table.round(2).to_markdown())
    report.write_table(table, source, profiles.load(args.profile), "diffusion_choices", "Diffusion choices: faithfulness (oracle mIoU %), appearance and wall time per variant")


def _linked_run(source: runs.RunDir, name: str, cfg) -> runs.RunDir:
    """A run whose data, oracle and pseudo-label stages link to ``source``'s."""
    run_dir = runs.open(name, source.path.parent)
    needed = [f"data/{n}" for n in (*cfg.sources, cfg.target)] + [judge_stage(cfg), "pseudo_labels"]
    # Pretraining and stage 1 are linked too: a linked stage whose parameters differ from the variant's is
    # rebuilt in the benchmark run (the link is replaced, the source run's folder is never written).
    optional = [s for s in (diffusion.pretrain.STAGE, diffusion.stage1.STAGE) if source.manifest(s) is not None]
    run_dir.link_from(source, needed + optional, hint=": run notebooks 00 and 01 on it first")
    return run_dir


if __name__ == "__main__":
    main()
