"""The MCOC judge: which segmenter scores the generated images, the step that trains it, and loading it.

The judge is the run's pseudo-labeller unless ``mcoc_judge`` names another
segmenter trained without target labels (a stage-01 method, a model stage, or a
folder / hub id); the target oracle is refused. Step ``judge`` of the stage
graph trains it when it is a method (``train_judge``); the stages of 05 only
read it (``required_judge``).
"""

from __future__ import annotations

from synthlib.fingerprints import weights_fingerprint
from synthlib.mcoc_objects import MCOCError
from synthlib.profiles import Profile
from synthlib.runs import RunDir, processes


def judge_name(cfg: Profile) -> str:
    """The judge the profile asks for: ``mcoc_judge``, else the pseudo-labeller."""
    return cfg.mcoc_judge or cfg.pseudo_labeller


def judge_stage(cfg: Profile) -> str | None:
    """The model stage of the judge (None for a folder / hub id); the oracle is refused.

    A method name (``self_training``, ``advent``, ...) is that method's model on
    ``uda_source`` from stage 01, ``colour`` stage 01's model on the recoloured
    sources; a ``models/...`` name is that stage.
    """
    from synthlib import pseudo_labels
    from synthlib.segmenters import fit as seg

    name = judge_name(cfg)
    oracle = seg.model_stage("supervised", f"data/{cfg.target}")
    if name == "oracle" or name == oracle:
        raise MCOCError(
            f"mcoc_judge {name!r}: the target oracle was trained on target labels, which the framework never uses; "
            f"judge with the pseudo-labeller (mcoc_judge='') or another segmenter trained without target labels "
            f"({', '.join(m for m in seg.METHODS if m != 'supervised')}, or a source-only model stage)"
        )
    if name in seg.METHODS or name == pseudo_labels.COLOUR:
        return pseudo_labels.labeller_stage(cfg, name)
    if name.startswith("models/"):
        return name
    return None


def train_judge(run_dir: RunDir, cfg: Profile) -> str | None:
    """Step 'judge': train the judge (stage 01's segmenter code, cached) when it is a method; its model stage."""
    from synthlib import pseudo_labels

    if judge_stage(cfg) is not None and not judge_name(cfg).startswith("models/"):
        pseudo_labels.train_labeller(run_dir, cfg, judge_name(cfg))
    return required_judge(run_dir, cfg)


def required_judge(run_dir: RunDir, cfg: Profile) -> str | None:
    """The judge's model stage, which must be made (``train_judge``); None for a folder or hub id."""
    stage = judge_stage(cfg)
    name = judge_name(cfg)
    if stage is not None and run_dir.manifest(stage) is None:
        if name.startswith("models/"):
            raise MCOCError(f"mcoc_judge {name!r}: run {run_dir.name!r} has no completed stage {stage!r}")
        run_dir.require(stage, "step 'judge' (mcoc.train_judge, notebook 05_mcoc_filtering)")
    return stage


def load_judge(run_dir: RunDir, cfg: Profile):
    """The judge segmenter on the accelerator's device."""
    from synthlib.segmenters import fit as seg
    from synthlib.segmenters import load

    stage = required_judge(run_dir, cfg)
    model = load(judge_name(cfg)) if stage is None else seg.load_model(run_dir, stage)
    return model.to(processes().device).eval()


def _judge_weights(cfg: Profile, stage: str | None) -> dict[str, str]:
    """``{"judge_weights": fingerprint}`` for a judge loaded from a folder / cached hub id, else nothing.

    New weights at the judge's path then re-run the stage; stages judged by a model stage keep their hashes.
    """
    weights = None if stage is not None else weights_fingerprint(judge_name(cfg))
    return {} if weights is None else {"judge_weights": weights}
