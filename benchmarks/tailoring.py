"""Dataset tailoring ablated: coarse labels, camera matching, rare-class sampling, alone and together.

    python benchmarks/tailoring.py --run default                          # seed 0, every source
    python benchmarks/tailoring.py --run default --seeds 0,1,2            # three seeds
    python benchmarks/tailoring.py --run default --sets data/flat generated/flat
    python benchmarks/tailoring.py --run default --seeds 0,1,2 --table tailoring_ours \
        --sets generated/flat-filtered generated/game-filtered       # ours: the filtered generated sets

Trains stage 06's segmenter on each training set (default: every source of the profile;
a generated or filtered set of the run by its stage name) under six variants: nothing
tailored and no rare-class sampling, each of the three alone (coarse labels at 2 px and
at 1 px), and all three. Each
variant and seed is a run ``<run>-tailor-<variant>-seed<k>`` that links the run's
datasets (nothing of the run is rewritten); camera matching reuses the untailored
segmenter of the run with the same sampling to read the target's horizon. Models are
evaluated on the target val. Writes the table ``tailoring`` (or ``--table``) into the run's tables:
mIoU per seed, mean and std, and the change from the untailored variant; and the table
``tailoring_camera``: the horizons camera matching measured, beside the target's labels'.
"""

from __future__ import annotations

import argparse
import re

import pandas as pd

from synthlib import data, profiles, report, runs, segmentation, tailoring
from synthlib.segmenters import fit

#: Variant -> profile overrides; the first is the baseline the others are compared with.
VARIANTS: dict[str, dict] = {
    "none": {"tailor_coarse": 0, "tailor_camera": False, "seg_rcs_temperature": 0.0},
    "rare-class sampling": {"tailor_coarse": 0, "tailor_camera": False, "seg_rcs_temperature": 0.01},
    "coarse labels": {"tailor_coarse": 2, "tailor_camera": False, "seg_rcs_temperature": 0.0},
    "coarse labels, 1 px": {"tailor_coarse": 1, "tailor_camera": False, "seg_rcs_temperature": 0.0},
    "camera matching": {"tailor_coarse": 0, "tailor_camera": True, "seg_rcs_temperature": 0.0},
    "all three": {"tailor_coarse": 2, "tailor_camera": True, "seg_rcs_temperature": 0.01},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="default")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds")
    ap.add_argument("--sets", nargs="+", default=None, help="training set stages; default: data/<each source>")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--table", default="tailoring", help="table name; its camera table is <table>_camera")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg = profiles.load(args.profile)
    sets = args.sets or [f"data/{s}" for s in cfg.sources]
    source_run = runs.open(args.run)
    data.prepare(source_run, cfg, names=[*cfg.sources, cfg.target])
    results = {}
    for seed in seeds:
        made: dict[float, runs.RunDir] = {}  # rare-class temperature -> the untailored run: its segmenters are reused
        for variant in args.variants:
            overrides = VARIANTS[variant]
            vcfg = profiles.load(args.profile, seed=seed, **overrides)
            run_dir = runs.open(f"{args.run}-tailor-{re.sub(r'[^a-z0-9]+', '-', variant)}-seed{seed}", source_run.path.parent)
            run_dir.link_from(source_run, [f"data/{cfg.target}", *sets], hint=": make it in the run first")
            base = made.get(overrides["seg_rcs_temperature"])
            if base is not None:
                run_dir.link_from(base, [fit.model_stage("supervised", s) for s in sets if base.manifest(fit.model_stage("supervised", s))])
            models = segmentation.train_all(run_dir, vcfg, sets=sets, with_uda=False)
            if not tailoring.enabled(vcfg):
                made[overrides["seg_rcs_temperature"]] = run_dir
            for stage in models.values():
                train_set = stage.split("/", 2)[2].removeprefix(f"{tailoring.FOLDER}/")
                row = fit.evaluate(run_dir, vcfg, stage, [f"data/{cfg.target}:val"]).iloc[0]
                results[(train_set, variant, seed)] = row["mIoU"]
    camera = camera_table(source_run, cfg, sets, seeds, args.run) if "camera matching" in args.variants else None
    table = summarise(pd.Series(results))
    pd.set_option("display.width", 200)
    print(f"mIoU (%) on {cfg.target} val")
    print(table.round(2).to_string())
    title = f"Dataset tailoring ablated: mIoU (%) on {cfg.target} val (benchmarks/tailoring.py)"
    report.write_table(table, source_run, cfg, args.table, title, digits=2)
    if camera is not None:
        print(camera.round(4).to_string())
        title = "Camera matching: horizons as shares of the height (target labels: a check, never used to tailor)"
        report.write_table(camera, source_run, cfg, f"{args.table}_camera", title, digits=4)


def camera_table(source_run: runs.RunDir, cfg, sets: list[str], seeds: list[int], run: str) -> pd.DataFrame:
    """Per set and seed: the set's horizon, the target's as its segmenter predicts it and as its labels have it, the crop."""
    labels = source_run.dataset(f"data/{cfg.target}", "train")
    truth = tailoring.horizon(labels[i].label for i in range(min(tailoring.HORIZON_IMAGES, len(labels))))
    rows = {}
    for seed in seeds:
        run_dir = runs.open(f"{run}-tailor-camera-matching-seed{seed}", source_run.path.parent)
        for s in sets:
            info = run_dir.manifest(f"{tailoring.FOLDER}/{s}")["info"]
            rows[(s, seed)] = {"set": info["set_horizon"], "target (predicted)": info["target_horizon"],
                               "target (labels)": truth, "crop size": info["crop_size"]}  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["training set", "seed"])


def summarise(results: pd.Series) -> pd.DataFrame:
    """(set, variant, seed) -> mIoU as one row per set and variant: each seed, mean, std, and mean - untailored mean."""
    wide = results.unstack(2)
    out = wide.rename(columns=lambda s: f"seed {s}")
    out["mean"] = wide.mean(axis=1)
    out["std"] = wide.std(axis=1, ddof=1) if wide.shape[1] > 1 else float("nan")
    baseline = next(iter(VARIANTS))
    out[f"mean - {baseline}"] = out["mean"] - out["mean"].xs(baseline, level=1).reindex(out.index.get_level_values(0)).to_numpy()
    order = [v for v in VARIANTS if v in out.index.get_level_values(1)]
    return out.reindex(pd.MultiIndex.from_product([results.index.get_level_values(0).unique(), order])).rename_axis(["training set", "variant"])


if __name__ == "__main__":
    main()
