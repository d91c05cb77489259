"""The fields of a profile: every tunable of a run, with its default and why.

``synthlib.profiles`` holds the three profiles built from these defaults
(``smoke``, ``default``, ``paper``) and loads, checks and describes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: What each condition is called in an editing instruction (the text SDGPA adapts from).
ZS_INSTRUCTIONS = {"fog": "add fog", "night": "make it night", "rain": "add rain", "snow": "add snow"}


@dataclass(frozen=True)
class Profile:
    """Every tunable of a run. Stages read the fields they need from here."""

    name: str = "default"
    seed: int = 0
    # Real datasets by name: a folder, or {"root": folder, "kind": adapter, ...adapter options}
    # (synthlib.data.source_spec). minicity styles need none.
    roots: dict[str, Any] = field(default_factory=dict)
    # Seconds one notebook cell may run under `synthlib reproduce` before the run stops with an
    # error naming the notebook and cell; 0 = no limit. Generous: it catches hangs, not slow stages.
    cell_timeout: int = 6 * 3600
    # Image size (height, width) of the embedded world and the models trained on it.
    height: int = 64
    width: int = 128
    # Datasets. Names are minicity styles ("flat", "game", "real") or dataset kinds
    # given a root in 00_data ("gta5", "synthia", "cityscapes", "folder", ...).
    sources: tuple[str, ...] = ("flat", "game")
    target: str = "real"
    conditions: tuple[str, ...] = ("fog", "night", "rain", "snow")
    # minicity sizes per split; real datasets are capped by max_train/max_val (0 = all).
    minicity_train: int = 500
    minicity_val: int = 200
    minicity_condition_val: int = 100
    max_train: int = 0
    max_val: int = 0
    # Segmenters (pseudo-labellers, UDA baselines, downstream): a config of synthlib.segmenters.ARCHITECTURES (random
    # weights), a SegFormer folder / hub id, or zoo:NAME. The zoo's MiT-B0 encoder is fine-tuned as real runs fine-tune
    # ImageNet's (benchmarks/segmenter_init.py); mit-b0-s2 scored no better at twice the step time.
    seg_model: str = "zoo:mit-b0"
    seg_backend: str = "transformers"  # or "mmseg" (supervised segmenters via mmengine; the 'mmseg' extra)
    seg_steps: int = 600
    seg_batch: int = 8
    seg_lr: float = 1e-3
    seg_crop: tuple[int, ...] = (64, 128)  # (h, w) training crop
    seg_rcs_temperature: float = 0.0  # rare-class sampling; 0 disables
    seg_eval_window: tuple[int, ...] = ()  # (h, w) sliding-window inference; () = whole image
    tailor_coarse: int = 0  # 06's sets (synthlib.tailoring): px each class region shrinks, its edge ignored; 0 = off
    tailor_camera: bool = False  # 06's sets cropped so their horizon falls at the target's (synthlib.tailoring)
    # Segmenters trained at once in their own processes (01, 06), sharing the CPU threads; 1 on a GPU.
    seg_workers: int = 2
    # UDA baselines and pseudo-labels (stage 01)
    uda_source: str = "game"
    uda_methods: tuple[str, ...] = ("advent", "road_dst", "road_spt", "road", "self_training")
    # a method name, "colour" (source only on every source recoloured to target images: synthlib.pseudo_labels.recolour),
    # or a SegFormer folder / hub id
    pseudo_labeller: str = "self_training"
    pseudo_threshold: float = 0.0  # pixels below this confidence become ignore; 0 keeps all
    # Diffusion (stages 02-03). diff_model: a named small config ("tiny", "micro"; pixel
    # space, random weights, pretrained here on the sources) or a Stable Diffusion folder /
    # hub id (latent space, loaded; no pretraining stage).
    diff_model: str = "tiny"
    diff_resolution: tuple[int, ...] = (32, 64)  # (h, w) generated; images are resized to the maps' size
    diff_patch: int = 1  # built models: p x p pixel cells folded into channels, the UNet runs at resolution / p
    diff_prediction: str = "v_prediction"  # built models only; a loaded model keeps its scheduler's
    diff_prompt: str = "a photo of a city street"  # the target domain prompt
    diff_batch: int = 8
    diff_lr: float = 1e-3
    diff_ema: float = 0.0  # EMA decay of the trained weights; 0 disables
    diff_lora_rank: int = 0  # stage 1: > 0 trains LoRA adapters (needs peft) instead of the whole UNet
    diff_gradient_checkpointing: bool = False
    diff_mixed_precision: bool = True  # fp16, on CUDA only
    # On CUDA with mixed precision: the frozen modules' dtype in training (VAE, text encoder, a ControlNet's UNet) and
    # sampling's autocast dtype ("float16", "bfloat16"); "float32" keeps them, as the embedded profiles' results were made.
    diff_inference_dtype: str = "float32"
    # Data-loader worker processes of the training loops (diffusion, segmenters) on CUDA: stage 2 one-hot encodes and
    # erodes every map, segmenters decode and crop full-size images. 0 on CPUs. Speed only: the batches are the same.
    data_workers: int = 0
    diff_checkpoint_every: int = 200
    diff_pretrain_steps: int = 600
    diff_pretrain_jitter: float = 0.5  # palette / colour jitter of the pretraining corpus
    diff_stage1_steps: int = 300
    diff_eval_every: int = 150  # stage-1 appearance score every this many steps
    diff_branch: str = "concat"  # stage-2 conditioning branch: "concat" or "controlnet"
    diff_stage2_steps: int = 800
    diff_erosion: int = 0  # pixels (at the pseudo-labels' resolution) near another class become unknown; 0 disables
    diff_depth: bool = True  # a depth channel in the conditioning
    diff_depth_model: str = ""  # "" = the dataset's depth; else a transformers depth model folder / hub id
    diff_p_uncond: float = 0.1  # condition dropout in training (classifier-free guidance)
    # The dropped examples lose their prompt too (-> ""), so guidance's unconditional branch is "" + no map, as Stable
    # Diffusion learnt it. Off on the embedded profiles: their results were made with the map dropped alone.
    diff_text_dropout: bool = False
    diff_guidance: float = 1.0  # guidance scale w at sampling; 1 = conditional only
    diff_conditioning_scale: float = 1.0
    diff_sample_steps: int = 20
    diff_scheduler: str = "ddim"  # "ddim" or "dpm"
    diff_eval_images: int = 64  # images per appearance / faithfulness score
    # Generation and MCOC (04_generation, 05_mcoc_filtering)
    gen_sources: tuple[str, ...] = ()  # dataset names or stages to generate from; () = the profile's sources
    gen_per_map: int = 1  # images per map, each with its own seed
    gen_max_maps: int = 0  # maps per source (the first of its train split); 0 = all
    # Guidance 1 / conditioning 1: 05's search on held-out maps can rank stronger guidance first by MCOC while the
    # segmenter trained on the generated sets disagrees (benchmarks/generation_downstream.py measures both);
    # guidance 1 also samples twice as fast, with one UNet pass a step.
    gen_guidance: float = 1.0  # classifier-free guidance scale; 1 = conditional only
    gen_conditioning_scale: float = 1.0  # scales the conditioning branch (ControlNet residuals or concatenated map)
    gen_steps: int = 10
    gen_scheduler: str = "ddim"  # "ddim" or "dpm"
    gen_batch: int = 32  # images per sampling call and per checkpointed batch
    gen_fit: str = "error"  # maps whose aspect ratio is not the model's: "error" or "crop" (centred)
    mcoc_judge: str = ""  # segmenter scoring generations: "" = the pseudo-labeller; a method name, model stage or folder / hub id; never the oracle
    mcoc_min_pixels: int = 16  # smaller objects are not objects
    # Only classes the judge predicts on at least this share of target pixels make objects: a judge blind to a
    # class cannot tell whether it was generated well (mcoc.judged_classes). 0 = all classes, docs/design.md §5 as written.
    mcoc_judged_share: float = 0.001
    mcoc_threshold: float = 0.5  # images whose MCOC is under this (0-1) are dropped
    mcoc_rectify: str = "relabel"  # objects the judge sees as ONE other class: "relabel", "ignore" or "off"
    mcoc_rectify_fraction: float = 0.5  # ... on more than this share of their pixels ("mostly", docs/design.md §5)
    # ... and that class is of the object's Cityscapes category ("category": a train seen as a bus, sidewalk as road),
    # or any class ("any", docs/design.md §5 as written). With "any", a weak judge relabels objects it misses (small
    # cars seen as road), erasing their labels; benchmarks/generation_downstream.py compares the two downstream.
    mcoc_rectify_within: str = "category"
    mcoc_grid_guidance: tuple[float, ...] = (1.0, 2.0)  # settings search: guidance scales
    mcoc_grid_conditioning: tuple[float, ...] = (0.75, 1.0, 1.25)  # ... conditioning scales
    mcoc_grid_steps: tuple[int, ...] = (10, 20)  # ... sampling steps
    mcoc_grid_maps: int = 16  # ... held-out maps (the sources' val splits) per setting
    # Image-to-image translation baselines (04_translation_baselines)
    i2i_k: tuple[int, ...] = (0, 10)  # one CycleGAN per K: labelled target images for semantic guidance; 0 = plain CycleGAN
    # FDA: the swapped low-frequency square, half-size as a fraction of min(h, w); 0 = unchanged. 0.09 at
    # 64 px swaps |k| <= 5 cycles per image, the band of FDA's published 0.01 at 512 px (the paper profile).
    i2i_fda_beta: float = 0.09
    i2i_ngf: int = 16  # generator base channels
    i2i_ndf: int = 16  # PatchGAN base channels
    i2i_blocks: int = 3  # residual blocks per generator
    i2i_disc_layers: int = 3  # PatchGAN depth; 3 = the 70x70 PatchGAN
    # Batch 1 as in CycleGAN. 300 steps keep the default notebook short on two CPU cores; CycleGAN is
    # undertrained there, which benchmarks/translation_ceiling.py puts beside a translation without that limit.
    i2i_steps: int = 300
    i2i_decay_steps: int = 150  # the last steps decay the learning rate linearly to 0
    i2i_batch: int = 1
    i2i_lr: float = 2e-4
    i2i_crop: tuple[int, ...] = ()  # (h, w) random training crop, multiples of 4; () = whole images
    i2i_cycle_weight: float = 10.0
    i2i_identity_weight: float = 0.5  # a fraction of the cycle weight, as in CycleGAN; 0 disables
    i2i_semantic_weight: float = 1.0  # guidance loss weight (K > 0)
    i2i_buffer: int = 50  # earlier translations kept for the discriminators
    i2i_guide_steps: int = 100  # fine-tuning of the target-side guidance segmenter on the K labelled target images
    i2i_checkpoint_every: int = 100
    # Zero-shot adaptation from a text description (SDGPA, 05_zero_shot): the clear target to each condition
    zs_editor: str = "zoo:editor"  # InstructPix2Pix: a folder, hub id (timbrooks/instruct-pix2pix) or zoo:NAME
    zs_instructions: dict[str, str] = field(default_factory=lambda: dict(ZS_INSTRUCTIONS))  # condition -> its description
    zs_patch: tuple[int, ...] = (32, 64)  # (h, w) edited at a time (SDGPA's patch-wise editing); () = whole images
    zs_overlap: float = 0.25  # share of a patch shared with its neighbour, blended
    zs_steps: int = 20  # editor sampling steps
    # Guidance on the instruction and on the input image. The zoo editor keeps more of the layout at 3 / 3 than at
    # InstructPix2Pix's 7.5 / 1.5 (the paper profile's): edges kept 0.45 vs 0.17 for fog (benchmarks/editor_settings.py).
    zs_guidance: float = 3.0
    zs_image_guidance: float = 3.0
    zs_max_images: int = 200  # clear train images edited per condition (the first ones); 0 = all
    zs_intermediate: bool = True  # a phase on the intermediate domain (source and edited images blended) first
    zs_progressive: bool = True  # each phase fine-tunes the previous phase's segmenter (else the source's)
    zs_self_training: bool = True  # the edited phase keeps a label only where the previous phase's segmenter agrees
    zs_seg_steps: int = 0  # segmenter steps per phase (each fine-tunes a trained model); 0 = a quarter of seg_steps
