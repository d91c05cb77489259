"""What other generation settings give downstream: generate, filter and train 06's segmenter in a linked run.

    python benchmarks/generation_downstream.py --run default --set '{"gen_guidance": 1.0, "gen_conditioning_scale": 1.0}'
    python benchmarks/generation_downstream.py --run default --set '{"gen_per_map": 2}'
    python benchmarks/generation_downstream.py --run default --set '{}' --labels truth   # perfect maps
    python benchmarks/generation_downstream.py --run default --set '{"pseudo_labeller": "colour"}'
    python benchmarks/generation_downstream.py --run default \
        --set '{"pseudo_labeller": "runs/default/models/supervised/translated/colour-flat/model", "mcoc_judge": "self_training"}'

05 chooses generation settings by MCOC on held-out maps; this checks a choice where
it matters, on the downstream segmenter. The run ``<run>-gen-<hash of the overrides>``
links the source run's datasets, diffusion model, judge and pseudo-labels (nothing of
the source run is written), generates every source's set with the overrides (04),
filters and rectifies it (05), trains and evaluates 06's segmenter on both (06's
stages, cached), and prints mIoU on target val beside the source run's own sets, with
the number of training images (what the filter kept) and the mIoU of each run's
pseudo-labels on target train (rows older than these columns: empty).
``pseudo_labeller`` (another method, ``colour``, or a segmenter folder such as a
translation baseline's model) makes the run's pseudo-labels again and trains stages 1
and 2 on them; the MCOC judge is the profile's (by default the pseudo-labeller) unless
``mcoc_judge`` says otherwise.
``--labels truth`` is the perfect-maps ablation: stages 1 and 2 are trained again in
the linked run on the target's ground-truth labels in place of its pseudo-labels
(which the framework never does: it has no target labels), so the rows say how much
of the gap to the oracle the pseudo-labels' errors explain. The
rows are added to ``<run>/tables/generation_downstream.{csv,md}`` (rows of earlier calls stay).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os

import numpy as np
import pandas as pd
from PIL import Image

from synthlib import data, diffusion, generation, mcoc, profiles, pseudo_labels, report, runs, segmentation
from synthlib.datasets import write_cityscapes
from synthlib.diffusion.common import judge_stage as diffusion_judge
from synthlib.segmenters import fit

#: Fields that change the pseudo-labels: stages 1 and 2 are trained again on them in the linked run.
RELABEL_FIELDS = ("pseudo_labeller", "pseudo_threshold")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="default", help="a run with stages 00-03 done")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--set", required=True, help="JSON profile overrides, e.g. '{\"gen_guidance\": 1.0}'")
    ap.add_argument("--labels", choices=("pseudo", "truth"), default="pseudo",
                    help="what stages 1-2 are conditioned on: the run's pseudo-labels, or the target's ground truth (ablation)")
    args = ap.parse_args()
    overrides = json.loads(args.set)
    cfg = profiles.load(args.profile, **overrides)
    source = runs.open(args.run)
    described = json.dumps(overrides, sort_keys=True) + (" labels=truth" if args.labels == "truth" else "")
    key = hashlib.sha256(described.encode()).hexdigest()[:8]
    other = [k for k in overrides if not k.startswith(("gen_", "mcoc_")) and k not in RELABEL_FIELDS]
    if other:  # anything else would retrain linked stages instead of reusing the source run's
        raise SystemExit(f"--set {', '.join(other)}: only generation (gen_*), MCOC (mcoc_*) and pseudo-label "
                         f"({', '.join(RELABEL_FIELDS)}) fields can change here")
    relabel = args.labels == "truth" or any(k in overrides for k in RELABEL_FIELDS)
    run_dir = runs.open(f"{args.run}-gen-{key}", source.path.parent)
    # made before the links, so the run's pseudo-labels are not linked in their place
    if args.labels == "truth":
        _truth_as_pseudo_labels(source, run_dir, cfg)
    elif relabel:
        labeller = pseudo_labels.labeller_stage(cfg)
        trained = [labeller] if labeller and source.manifest(labeller) is not None else []  # else trained here
        run_dir.link_from(source, [f"data/{name}" for name in (cfg.target, *cfg.sources)] + trained)
        pseudo_labels.make(run_dir, cfg)
    _linked_run(source, run_dir.name, cfg)
    if relabel:  # linked stages 1 and 2 read other labels now: made again here, not in the source run
        diffusion.pretrain.pretrain(run_dir, cfg)
        diffusion.train_stage1(run_dir, cfg)
        diffusion.train_stage2(run_dir, cfg)
        info = run_dir.manifest(diffusion.stage2.STAGE)["info"]
        print(f"stage-2 faithfulness on the new maps: {info['faithfulness']['mIoU']:.1f} "
              f"(real target images: {info['faithfulness_reference']['mIoU']:.1f})", flush=True)
    sets = segmentation.eval_sets(cfg)
    rows = {}
    for src in generation.sources(cfg):
        generation.generate_set(run_dir, cfg, src)
        mcoc.filter_set(run_dir, cfg, src)
        unfiltered = generation.stage_name(src)
        for label, train_set in (("unfiltered", unfiltered), ("filtered + rectified", mcoc.filtered_name(unfiltered))):
            fit.fit(run_dir, cfg, train_set)
            model = fit.model_stage("supervised", train_set)
            ours = fit.evaluate(run_dir, cfg, model, sets).loc[sets[0], "mIoU"]
            base = source.stage_path(f"eval/{model}") / "iou.csv"
            before = pd.read_csv(base, index_col=0).loc[sets[0], "mIoU"] if base.is_file() else float("nan")
            rows[(_shown(described, source), src, label)] = {
                "mIoU with overrides": ours, f"mIoU in run {args.run!r}": before,
                "training images": len(run_dir.dataset(train_set, "train")),
                "pseudo-label mIoU (target train)": _pseudo_label_miou(run_dir),
                f"pseudo-label mIoU in run {args.run!r}": _pseudo_label_miou(source),
            }  # fmt: skip
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis(["overrides", "source", "training set"])
    print(f"mIoU (%) on {cfg.target} val")
    print(table.round(1).to_string())
    previous = source.path / report.TABLES / "generation_downstream.csv"
    if previous.is_file():  # rows of earlier calls stay, re-measured rows replace theirs
        old = pd.read_csv(previous, index_col=[0, 1, 2])
        table = pd.concat([old.drop(index=[k for k in table.index if k in old.index]), table])
    report.write_table(table, source, profiles.load(args.profile), "generation_downstream",
                       f"Downstream mIoU (%) on {cfg.target} val of generated sets made with other generation / MCOC settings")


def _shown(described: str, source: runs.RunDir) -> str:
    """The overrides as the table shows them: a folder inside the runs directory as ``<run>/...``, so no machine's path is kept."""
    return described.replace(str(source.path.parent.resolve()) + os.sep, "").replace(str(source.path.parent) + os.sep, "")


def _pseudo_label_miou(run_dir: runs.RunDir) -> float:
    """mIoU (%) of the run's pseudo-labels against the target's train labels, as stage 01 measured them (100 for the truth)."""
    info = run_dir.manifest("pseudo_labels")["info"].get("train", {})
    return info.get("mIoU", 100.0 if info.get("labeller") == "ground truth" else float("nan"))


def _truth_as_pseudo_labels(source: runs.RunDir, run_dir: runs.RunDir, cfg) -> None:
    """Stage ``pseudo_labels`` of ``run_dir`` holding the target's ground-truth labels (confidence 1 everywhere)."""
    target = f"data/{cfg.target}"
    run_dir.link_from(source, [target])

    def build(ctx):
        for split in ("train", "val"):
            labelled = run_dir.dataset(target, split)
            write_cityscapes(labelled, ctx.out, split)
            folder = ctx.out / "confidence" / split
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(len(labelled)):
                sample = labelled[i]
                Image.fromarray(np.full(sample.label.shape, 255, np.uint8)).save(folder / f"{sample.id}_confidence.png")
            ctx.info[split] = {"images": len(labelled), "labeller": "ground truth"}

    run_dir.stage("pseudo_labels", {"labeller": "ground truth (ablation)"}, build, inputs=[target])


def _linked_run(source: runs.RunDir, name: str, cfg) -> runs.RunDir:
    """A run whose datasets, diffusion stages, judge and pseudo-labels are links to ``source``'s.

    The source run's generated sets, and the segmenters trained on them, are linked too
    where they exist: a set whose generation settings the overrides change is rebuilt
    in place of its link, and an unchanged one (``mcoc_*`` overrides) is not made again.
    """
    run_dir = runs.open(name, source.path.parent)
    wanted = [f"data/{n}" for n in data.dataset_names(cfg)] + [diffusion.pretrain.STAGE, diffusion.stage1.STAGE,
                                                              diffusion.stage2.STAGE, "pseudo_labels"]
    # the MCOC judge, and the oracle that scored stages 1 and 2 (part of their parameters)
    wanted += [s for s in (mcoc.judge_stage(cfg), diffusion_judge(cfg)) if s]
    # stages made here already (a new pseudo-labeller, which is the judge too by default) are not linked
    run_dir.link_from(source, [s for s in wanted if run_dir.manifest(s) is None], hint=": run notebooks 00-03 on it first")
    unfiltered = [generation.stage_name(src) for src in generation.sources(cfg)]
    models = [fit.model_stage("supervised", s) for s in unfiltered]
    run_dir.link_from(source, [s for s in unfiltered + models + [f"eval/{m}" for m in models] if source.manifest(s) is not None])
    return run_dir


if __name__ == "__main__":
    main()
