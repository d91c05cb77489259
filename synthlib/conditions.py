"""The adverse-conditions table: the framework and its baselines with each condition as the target.

As in SDGPA and Cityscapes -> ACDC practice, the source is the clear target domain
(``data/<target>``, labelled) and each condition of the profile is a target of its own
(``<target>-<condition>`` on minicity, ``acdc-<condition>`` on real data); on minicity
the ``game`` look is one more target (real -> game, SDGPA's last column). Each target
gets its own run ``<run>-<column>`` beside the main run, with the profile changed in
the four fields that say what is adapted to what (``target_profile``): the whole
pipeline (01's source-only and UDA segmenters, stages 1 and 2 on the condition's
unlabelled train images, generation, the translation baselines, MCOC, 06) is built
there by the stage graph, so every row is made by the same code as the main table.
The clear target's dataset and segmenter are linked from the main run where their
parameters match (the main run's oracle is each target run's source-only model), and the
diffusion model pretrained on the clear source from the first column's run.

Rows (``table``): source only, the best UDA method, CycleGAN + semantic guidance,
ours (generated + MCOC filter + rectification), SDGPA zero-shot (text only: the main
run's ``zero_shot`` step, whose evaluation sets are the same condition val images),
and the oracle. A column SDGPA cannot make (no instruction for ``game``: the editor
learns weather edits only) is left empty.
"""

from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import pandas as pd
from tqdm.auto import tqdm

from synthlib import data, graph, minicity, paper_tables, zero_shot
from synthlib.diffusion.pretrain import STAGE as PRETRAIN
from synthlib.generation import stage_name as generated_name
from synthlib.mcoc import filtered_name
from synthlib.profiles import Profile
from synthlib.runs import RunDir
from synthlib.runs import open as open_run
from synthlib.segmenters import fit as seg
from synthlib.translation import display_name as i2i_name
from synthlib.translation.baselines import cyclegan_method

#: minicity looks that are targets of the table besides the conditions (real -> game).
LOOK_TARGETS = ("game",)
SDGPA = "SDGPA zero-shot (text only)"
BEST_UDA = "best UDA method"
#: The table's rows, in order.
ROWS = (paper_tables.SOURCE_ONLY, BEST_UDA, "CycleGAN + guidance", paper_tables.OURS, SDGPA, paper_tables.ORACLE)


class ConditionsError(ValueError):
    """A target the profile cannot make, or a run without what the table reads."""


def targets(cfg: Profile) -> dict[str, str]:
    """Each column of the table and its target dataset: every condition, then (minicity) the other looks."""
    out = dict(zip(cfg.conditions, data.condition_names(cfg), strict=True))
    if cfg.target in minicity.STYLES:
        out.update({look: look for look in LOOK_TARGETS if look != cfg.target})
    return out


def target_profile(cfg: Profile, target: str) -> Profile:
    """``cfg`` adapting from the clear target to ``target``: the only fields a column changes."""
    return dataclasses.replace(
        cfg, target=target, sources=(cfg.target,), conditions=(), uda_source=cfg.target, gen_sources=()
    )


def target_run(main: RunDir, column: str) -> RunDir:
    """The run of one column, beside the main run: ``<run>-<column>``."""
    return open_run(f"{main.name}-{column}", main.path.parent)


def build(main: RunDir, cfg: Profile, columns: list[str] | None = None) -> dict[str, RunDir]:
    """Make the main run's zero-shot step, then every column's run up to 06 (current stages are skipped).

    ``columns`` restricts the table to some of ``targets(cfg)`` (all by default);
    ``ConditionsError`` names an unknown one before anything is built.
    """
    wanted = _columns(cfg, columns)
    # first, so the columns' runs link the clear target's segmenter instead of training it again
    graph.build(main, cfg, "zero_shot" if any(c in cfg.conditions for c in wanted) else "pseudo_labels")
    shared = [f"data/{cfg.target}", seg.model_stage("supervised", f"data/{cfg.target}")]
    runs = {}
    for column in tqdm(wanted, desc="condition targets"):
        run_dir = target_run(main, column)
        # a source look (game) is the same dataset there; a linked stage whose parameters differ
        # is rebuilt in the column's run, the main run's left as it is
        candidates = [*shared, f"data/{wanted[column]}"]
        run_dir.link_from(main, [s for s in candidates if main.manifest(s) is not None])
        first = next(iter(runs.values()), None)
        if first is not None and first.manifest(PRETRAIN) is not None:  # pretrained on the clear source: every column's
            run_dir.link_from(first, [PRETRAIN])
        graph.build(run_dir, target_profile(cfg, wanted[column]), "segmentation")
        runs[column] = run_dir
    return runs


def table(main: RunDir, cfg: Profile, columns: list[str] | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """mIoU (%) on each target's val: ``ROWS`` x columns, and the best UDA method's name per column.

    Reads what ``build`` made; ``ConditionsError`` names a column whose run lacks it.
    """
    wanted = _columns(cfg, columns)
    guided = _guided(cfg)
    guided_row = f"{i2i_name(guided)} (trained on translated)" if guided else None
    uda_rows = [seg.LABELS[m] for m in cfg.uda_methods]
    sdgpa = _sdgpa(main, cfg, [c for c in wanted if c in cfg.conditions])
    out, best_uda = {}, {}
    for column, target in wanted.items():
        run_dir, tcfg = target_run(main, column), target_profile(cfg, target)
        try:
            miou = paper_tables.miou_table(paper_tables.evaluations(run_dir, tcfg), tcfg)[cfg.target]
        except (paper_tables.TablesError, KeyError) as e:
            raise ConditionsError(f"column {column!r}: run {run_dir.name!r} has no evaluations of the clear source "
                                  f"on {target} val ({e}): build it first (conditions.build)") from e  # fmt: skip
        uda = miou.reindex(uda_rows).dropna()
        best_uda[column] = str(uda.idxmax()) if len(uda) else ""
        out[column] = {
            paper_tables.SOURCE_ONLY: miou.get(paper_tables.SOURCE_ONLY),
            BEST_UDA: uda.max() if len(uda) else float("nan"),
            "CycleGAN + guidance": miou.get(guided_row, float("nan")) if guided_row else float("nan"),
            paper_tables.OURS: miou.get(paper_tables.OURS, float("nan")),
            SDGPA: sdgpa.get(column, float("nan")),
            paper_tables.ORACLE: miou.get(paper_tables.ORACLE, float("nan")),
        }
    result = pd.DataFrame(out).reindex(list(ROWS)).astype(float)
    return result.rename_axis(index="training data / method", columns=None), best_uda


def seed_table(main: RunDir, cfg: Profile, seed: int, best_uda: dict[str, str], columns: list[str] | None = None) -> pd.DataFrame:
    """``table``'s rows with the segmenters trained again with another ``seed`` on the same training sets.

    Each column's run gets a seed run ``<run>-<column>-seed<k>`` and the main run one,
    ``<run>-seed<k>``, whose stages are links to theirs: the datasets and the translated,
    generated and filtered sets are the seed-``cfg.seed`` ones, and the segmenters (source
    only, the column's best UDA method at ``cfg.seed``, CycleGAN + guidance's, ours, the
    oracle, SDGPA's phases) are new. SDGPA's edits are made again: the editor's noise is
    seeded, part of the method.
    The clear target's segmenter is trained once per seed, in the main seed run, and linked
    into the columns' seed runs, as in ``build``.
    """
    if seed == cfg.seed:
        raise ConditionsError(f"seed {seed} is the profile's own: table() reads it")
    wanted = _columns(cfg, columns)
    clear, source_model = f"data/{cfg.target}", seg.model_stage("supervised", f"data/{cfg.target}")
    main_seed, seed_cfg = open_run(f"{main.name}-seed{seed}", main.path.parent), dataclasses.replace(cfg, seed=seed)
    conds = [c for c in wanted if c in cfg.conditions]
    evaluated = [s.split(":")[0] for s in data.eval_sets(cfg)]
    main_seed.link_from(main, [clear, *evaluated, *(zero_shot.set_stage(k, c) for c in conds for k in ("edited", "intermediate"))])
    seg.fit(main_seed, seed_cfg, clear)
    sdgpa = None
    if conds:
        sdgpa = zero_shot.table(main_seed, seed_cfg, {c: zero_shot.adapt(main_seed, seed_cfg, c)[-1] for c in conds})
    guided = _guided(cfg)
    out = {}
    for column, target in wanted.items():
        base = target_run(main, column)
        run_dir, tcfg = open_run(f"{base.name}-seed{seed}", main.path.parent), target_profile(seed_cfg, target)
        jobs = {paper_tables.OURS: (filtered_name(generated_name(clear)), "supervised", None),
                paper_tables.ORACLE: (f"data/{target}", "supervised", None)}  # fmt: skip
        if best_uda.get(column):
            jobs[BEST_UDA] = (clear, _uda_method(best_uda[column]), f"data/{target}")
        if guided:
            jobs["CycleGAN + guidance"] = (f"translated/{guided}-{cfg.target}", "supervised", None)
        run_dir.link_from(base, sorted({clear, f"data/{target}", *(train for train, _, _ in jobs.values())}))
        run_dir.link_from(main_seed, [source_model])
        seg.fit_many(run_dir, tcfg, list(jobs.values()))
        sets = data.eval_sets(tcfg)
        miou = {row: seg.evaluate(run_dir, tcfg, seg.model_stage(method, train), sets).loc[sets[0], "mIoU"]
                for row, (train, method, _) in {**jobs, paper_tables.SOURCE_ONLY: (clear, "supervised", None)}.items()}  # fmt: skip
        miou[SDGPA] = sdgpa.loc[column, "zero-shot (SDGPA)"] if sdgpa is not None and column in sdgpa.index else float("nan")
        out[column] = miou
    return pd.DataFrame(out).reindex(list(ROWS)).astype(float).rename_axis(index="training data / method", columns=None)


def figure(
    main: RunDir, cfg: Profile, columns: list[str] | None = None, index: int = 0, cell_inches: float = 1.6
) -> plt.Figure:
    """One row per target: clear source image ``index``, ours (its first generation, unfiltered), CycleGAN + guidance
    and the SDGPA edit of it, and a real image of the target's val."""
    from synthlib.viz import image_grid

    wanted = _columns(cfg, columns)
    guided = _guided(cfg)
    source = main.dataset(f"data/{cfg.target}", "train")[index].image
    rows = []
    for column, target in wanted.items():
        run_dir = target_run(main, column)
        ours = generated_name(f"data/{cfg.target}")
        panels = [source, _image(run_dir, ours, _generated_index(run_dir, ours, index))]
        panels.append(_image(run_dir, f"translated/{guided}-{cfg.target}", index) if guided else None)
        edited = zero_shot.set_stage("edited", column)
        panels.append(_image(main, edited, index) if column in cfg.conditions else None)
        panels.append(run_dir.dataset(f"data/{target}", "val")[0].image)
        rows.append((column, panels))
    names = ["source (clear)", "ours", "CycleGAN + guidance", "SDGPA edit", "target (val)"]
    return image_grid(rows, names, cell_inches)


def write(main: RunDir, cfg: Profile, columns: list[str] | None = None, seeds: tuple[int, ...] = ()) -> pd.DataFrame:
    """``build``, then the table ``conditions_miou`` and the figure ``conditions_samples`` in the main run's tables.

    With ``seeds`` (other than the profile's own) every row is trained again per seed
    (``seed_table``): ``conditions_miou`` holds the mean over all seeds, ``conditions_miou_std``
    the standard deviation, and ``conditions_miou_seeds`` every seed's value. Returns the mean.
    """
    from synthlib import report

    build(main, cfg, columns)
    first, best_uda = table(main, cfg, columns)
    per_seed = {cfg.seed: first, **{k: seed_table(main, cfg, k, best_uda, columns) for k in tqdm(seeds, desc="seeds")}}
    stacked = pd.concat(per_seed, names=["seed"])
    mean = stacked.groupby(level=1, sort=False).mean()
    uda = "; ".join(f"{c}: {m}" for c, m in best_uda.items() if m) or "none run"
    over = f"mean over seeds {', '.join(map(str, per_seed))}; " if seeds else ""
    report.write_table(mean, main, cfg, "conditions_miou",
                       f"mIoU (%) on each target's val, the clear {cfg.target} (labelled) as the source: rows = training "
                       f"data / method, columns = target (runs {main.name}-<column>; SDGPA from run {main.name}); {over}"
                       f"best UDA method per column: {uda}")  # fmt: skip
    if seeds:
        std = stacked.groupby(level=1, sort=False).std()
        report.write_table(std, main, cfg, "conditions_miou_std", f"Standard deviation of conditions_miou over seeds {', '.join(map(str, per_seed))}")
        report.write_table(stacked.swaplevel().sort_index(level=0, sort_remaining=False), main, cfg, "conditions_miou_seeds",
                           "conditions_miou per seed")  # fmt: skip
    fig = figure(main, cfg, columns)
    report.write_figure(fig, main, "conditions_samples", cfg=cfg)
    plt.close(fig)
    return mean


def _guided(cfg: Profile) -> str | None:
    """The CycleGAN + guidance method the table reports (largest K of ``i2i_k``); None without one."""
    k = max(cfg.i2i_k, default=0)
    return cyclegan_method(k) if k else None


def _columns(cfg: Profile, columns: list[str] | None) -> dict[str, str]:
    every = targets(cfg)
    if columns is None:
        return every
    unknown = [c for c in columns if c not in every]
    if unknown:
        raise ConditionsError(
            f"no condition target {', '.join(map(repr, unknown))}; the profile's: {', '.join(every) or 'none'}"
        )
    return {c: every[c] for c in columns}


def _uda_method(label: str) -> str:
    return next(method for method, name in seg.LABELS.items() if name == label)


def _sdgpa(main: RunDir, cfg: Profile, conditions: list[str]) -> dict[str, float]:
    if not conditions:
        return {}
    found = zero_shot.table(main, cfg, {c: zero_shot.adapt(main, cfg, c)[-1] for c in conditions})
    return found["zero-shot (SDGPA)"].to_dict()


def _generated_index(run_dir: RunDir, stage: str, map_index: int) -> int:
    """The position in a generated set of the first image made from source map ``map_index`` (-1: none)."""
    if run_dir.manifest(stage) is None:
        return -1
    made = pd.read_csv(run_dir.stage_path(stage) / "generation.csv")["map_index"].to_numpy()
    hits = (made == map_index).nonzero()[0]
    return int(hits[0]) if len(hits) else -1


def _image(run_dir: RunDir, stage: str, index: int):
    if index < 0 or run_dir.manifest(stage) is None:
        return None
    dataset = run_dir.dataset(stage, "train")
    return dataset[index].image if index < len(dataset) else None
