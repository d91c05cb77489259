import json

import numpy as np
import pytest
import torch

from synthlib import depth as depth_models
from synthlib import diffusion, profiles
from synthlib.datasets import Dataset, Sample
from synthlib.diffusion import conditioning, scores
from synthlib.diffusion.conditioning import UNKNOWN, UNKNOWN_CHANNEL, ConditioningError
from synthlib.diffusion.model import DiffusionModelError
from synthlib.diffusion.train import DiffusionSettings, Examples, train
from synthlib.labels import IGNORE, TRAIN_LABELS

ROAD, SIDEWALK, VEGETATION, SKY, CAR = 0, 1, 8, 10, 13
CLASSES = (ROAD, VEGETATION, SKY, CAR)
PALETTE = np.array([TRAIN_LABELS[c].color for c in CLASSES], np.float32)


class Halves(Dataset):
    """8x16 maps split at a random column into two of four classes; images are the class colours plus noise."""

    def __init__(self, n: int, seed: int, label_size: tuple[int, int] | None = None) -> None:
        self.n, self.seed, self.label_size = n, seed, label_size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        rng = np.random.default_rng([self.seed, i])
        a, b = rng.choice(CLASSES, 2, replace=False)
        label = np.full((8, 16), a, np.uint8)
        label[:, int(rng.integers(4, 13)) :] = b
        image = PALETTE[np.searchsorted(CLASSES, label)]
        image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        if self.label_size:
            label = np.zeros(self.label_size, np.uint8)
        return Sample(image, label, np.full((8, 16), 5.0, np.float32), None, f"h{i}")


def nearest_colour(images: np.ndarray) -> np.ndarray:
    """A perfect judge for Halves: the class of the nearest palette colour."""
    distance = ((images[..., None, :].astype(np.float32) - PALETTE) ** 2).sum(-1)
    return np.asarray(CLASSES, np.uint8)[distance.argmin(-1)]


def _outputs(model: diffusion.DiffusionModel) -> torch.Tensor:
    x = torch.randn(2, model.unet.config.in_channels, *model.sample_size, generator=torch.Generator().manual_seed(0))
    return model.unet(x, torch.tensor([10, 900]), model.encode_prompt(["a photo of a city street"] * 2)).sample


# --- model builder -----------------------------------------------------------------------


def test_builder_round_trip_gives_identical_outputs(tmp_path):
    model = diffusion.build("micro", (16, 32), "a photo of a city street", seed=3)
    assert model.space == "pixel" and model.vae is None and model.scheduler.config.prediction_type == "v_prediction"
    folder = diffusion.save(model, tmp_path / "m")
    assert {p.name for p in folder.iterdir()} == {"unet", "scheduler", "text_encoder", "tokenizer", "synthlib_diffusion.json"}
    loaded = diffusion.load(folder)
    assert loaded.resolution == (16, 32) and loaded.prompt == model.prompt
    with torch.no_grad():
        assert torch.equal(_outputs(model), _outputs(loaded))
    a = diffusion.generate(model, None, seeds=[5, 6], steps=3)
    b = diffusion.generate(folder, None, seeds=[5, 6], steps=3)
    assert a.shape == (2, 16, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)


def test_patched_pixel_space_is_lossless_half_size_and_round_trips(tmp_path):
    model = diffusion.build("micro", (16, 32), "p", seed=1, patch=2)
    assert model.space == "pixel" and model.vae_scale == 2 and model.sample_size == (8, 16)
    assert model.unet.config.in_channels == 12 and model.unet.config.out_channels == 12
    images = torch.randint(0, 256, (2, 3, 16, 32), dtype=torch.uint8)
    x = model.encode_images(images)
    assert x.shape == (2, 12, 8, 16)
    assert torch.allclose((model.decode(x) + 1) * 127.5, images.float(), atol=1e-4)  # folding loses nothing
    assert torch.equal(x[:, :, 0, 0].reshape(2, 3, 2, 2), images[:, :, :2, :2].float() / 127.5 - 1)  # cells are 2x2 pixels
    for branch in ("concat", "controlnet"):
        staged = diffusion.add_branch(model, branch, depth=False)
        assert staged.patch == 2 and staged.condition_size == ((8, 16) if branch == "concat" else (16, 32))
        loaded = diffusion.load(diffusion.save(staged, tmp_path / branch))
        assert loaded.patch == 2 and loaded.resolution == (16, 32)
        maps = np.zeros((2, 16, 32), np.uint8)
        a = diffusion.generate(staged, maps, steps=2)
        assert a.shape == (2, 16, 32, 3) and np.array_equal(a, diffusion.generate(loaded, maps, steps=2))
    with pytest.raises(DiffusionModelError, match="multiple of 8"):
        diffusion.build("micro", (12, 32), patch=2)
    with pytest.raises(DiffusionModelError, match="patch must be a positive integer"):
        diffusion.build("micro", (16, 32), patch=0)


def test_a_stable_diffusion_folder_loads_into_latent_space(tmp_path):
    """The real path on a tiny random Stable Diffusion: the same loader, a VAE, ControlNet at 8x the latent size."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = diffusion.small_tokenizer()
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=48))
    vae = AutoencoderKL(block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=4, latent_channels=4)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16, norm_num_groups=8, layers_per_block=1)
    for name, part in {"unet": unet, "vae": vae, "text_encoder": text, "tokenizer": tokenizer, "scheduler": DDPMScheduler()}.items():
        part.save_pretrained(tmp_path / "sd" / name)
    model = diffusion.build(str(tmp_path / "sd"), (32, 64), "a photo")
    assert model.space == "latent" and model.vae_scale == 8 and model.sample_size == (4, 8)
    branch = diffusion.add_branch(model, "controlnet", depth=False)
    assert branch.condition_size == (32, 64)
    maps = np.zeros((2, 32, 64), np.uint8)
    assert diffusion.generate(branch, maps, steps=2).shape == (2, 32, 64, 3)


def test_small_tokenizer_is_built_in_memory_and_round_trips(tmp_path):
    tok = diffusion.small_tokenizer(max_length=48)
    assert len(tok) == 514 and tok.model_max_length == 48
    ids = tok(["a photo of a city street", "Nebel, 7°C!"]).input_ids
    assert ids[0][0] == tok.bos_token_id and ids[0][-1] == tok.eos_token_id
    assert len(ids[0]) == len("aphotoofacitystreet") + 2  # one token per letter, spaces dropped
    assert tok.decode(ids[0], skip_special_tokens=True) == "a photo of a city street"
    assert tok.decode(ids[1], skip_special_tokens=True) == "nebel , 7 ° c !"  # lower-cased, any byte encodes
    tok.save_pretrained(tmp_path / "tok")
    from transformers import CLIPTokenizer

    assert CLIPTokenizer.from_pretrained(tmp_path / "tok")(["a photo of a city street"]).input_ids[0] == ids[0]


# --- conditioning --------------------------------------------------------------------------


def test_erosion_turns_class_borders_unknown():
    label = np.zeros((5, 6), np.uint8)
    label[:, 3:] = CAR  # road | car
    eroded = diffusion.erode(label, radius=1)
    assert (eroded[:, 2:4] == UNKNOWN).all()  # the border, both sides
    assert (eroded[:, :2] == ROAD).all() and (eroded[:, 4:] == CAR).all()
    wide = diffusion.erode(label, radius=2)
    assert (wide[:, 1:5] == UNKNOWN).all() and (wide[:, 0] == ROAD).all() and (wide[:, 5] == CAR).all()
    assert np.array_equal(diffusion.erode(label, 0), label)


def test_erosion_of_a_corner_and_next_to_ignore():
    label = np.full((5, 5), SKY, np.uint8)
    label[3:, 3:] = CAR  # a 2x2 car in the bottom-right corner
    label[0, 0] = IGNORE
    expected = label.copy()
    expected[2:, 2:] = UNKNOWN  # every pixel within one (diagonal included) of the other class ...
    expected[4, 4] = CAR  # ... but the car's corner pixel is two away from the sky
    assert np.array_equal(diffusion.erode(label, 1), expected)  # ignore erodes no neighbour and stays ignore
    batch = diffusion.erode(np.stack([label, label]), 1)
    assert np.array_equal(batch[1], expected)


def test_negative_erosion_radius_is_an_error(tmp_path):
    with pytest.raises(ConditioningError, match=r"erosion radius must be an integer >= 0 \(0 disables\), got -1"):
        diffusion.erode(np.zeros((4, 4), np.uint8), -1)
    from synthlib import runs

    with pytest.raises(ConditioningError, match="got -1"):  # before stage 1 or anything else runs
        diffusion.train_stage2(runs.open("t", tmp_path), profiles.load("smoke", diff_erosion=-1))


def test_encode_one_hot_unknown_depth_and_area_average():
    label = np.zeros((4, 8), np.uint8)
    label[:, 4:] = CAR
    label[0, 0] = IGNORE
    depth = np.full((4, 8), 10.0, np.float32)
    depth[:, 4:] = 5.0
    cond = conditioning.encode(label[None], None, 0, depth[None])
    assert cond.shape == (1, 21, 4, 8) and torch.equal(cond[0, :20].sum(0), torch.ones(4, 8))
    assert cond[0, UNKNOWN_CHANNEL, 0, 0] == 1 and cond[0, CAR, 0, 5] == 1
    assert cond[0, 20, 0, 0] == pytest.approx(0.5) and cond[0, 20, 0, 7] == pytest.approx(1.0)  # inverse depth / max
    half = conditioning.encode(label[None], (2, 4), 0)
    assert half.shape == (1, 20, 2, 4) and half[0, ROAD, 0, 0] == pytest.approx(0.75) and half[0, UNKNOWN_CHANNEL, 0, 0] == pytest.approx(0.25)
    with pytest.raises(ConditioningError, match=r"maps hold values \[30\]"):
        conditioning.encode(np.full((1, 2, 2), 30, np.uint8))


def test_condition_dropout_rate():
    cond = torch.ones(20000, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    dropped = (conditioning.drop(cond, 0.3, g) == 0).float().mean().item()
    assert dropped == pytest.approx(0.3, abs=0.015)
    assert (conditioning.drop(cond, 0.0, g) == 1).all() and (conditioning.drop(cond, 1.0, g) == 0).all()
    # through the training data path: p_uncond=0 keeps every map, and the model sees zeros as "unconditional"
    with pytest.raises(ConditioningError, match="p_uncond 1.5"):
        conditioning.drop(cond, 1.5, g)


def test_pseudo_labels_of_another_size_are_an_error():
    model = diffusion.add_branch(diffusion.build("micro", (8, 16)), "concat", depth=False)
    s = DiffusionSettings(steps=1, batch_size=2)
    examples = Examples([(Halves(4, 0, label_size=(4, 8)), 0)], model.resolution, s, {"size": model.condition_size, "depth": None})
    with pytest.raises(ConditioningError, match=r"sample 'h0'.*pseudo-label of size 4x8 does not match its image of size 8x16"):
        examples[(0, 0)]


def test_a_tiny_depth_model_estimates_depth(tmp_path):
    from transformers import GLPNConfig, GLPNForDepthEstimation, GLPNImageProcessor

    config = GLPNConfig(hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=8)
    GLPNForDepthEstimation(config).save_pretrained(tmp_path / "depth")
    GLPNImageProcessor().save_pretrained(tmp_path / "depth")
    model, processor = depth_models.load_depth_model(tmp_path / "depth")
    images = np.random.default_rng(0).integers(0, 255, (3, 32, 64, 3), dtype=np.uint8)
    depth = depth_models.estimate_depth(model, processor, images, batch_size=2)
    assert depth.shape == (3, 32, 64) and (depth > 0).all()
    channel = conditioning.inverse_depth(depth)
    assert channel.max() == pytest.approx(1.0) and channel.min() > 0
    with pytest.raises(depth_models.DepthError, match="could not load depth model .* diff_depth_model=''"):
        depth_models.load_depth_model(tmp_path / "nothing")


# --- bad model specs ------------------------------------------------------------------------


def test_a_folder_without_the_components_lists_what_is_missing(tmp_path):
    diffusion.build("micro", (16, 32)).unet.save_pretrained(tmp_path / "half" / "unet")
    with pytest.raises(DiffusionModelError, match=r"missing scheduler/, text_encoder/, tokenizer/, vae/"):
        diffusion.load(tmp_path / "half")
    with pytest.raises(DiffusionModelError, match="does not exist"):
        diffusion.load(tmp_path / "absent")


def test_a_hub_id_without_network_says_to_pass_a_local_folder(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network, no waiting for retries
    with pytest.raises(DiffusionModelError, match="Without network access pass a local folder"):
        diffusion.load("some-org/some-diffusion-model")


def test_bad_branch_resolution_and_scheduler():
    model = diffusion.build("micro", (16, 32))
    with pytest.raises(DiffusionModelError, match="branch 'adapter' unknown; valid: concat, controlnet"):
        diffusion.add_branch(model, "adapter", False)
    with pytest.raises(DiffusionModelError, match="multiple of 4"):
        diffusion.build("micro", (14, 32))
    with pytest.raises(DiffusionModelError, match="scheduler 'euler' unknown"):
        diffusion.generate(model, None, seeds=[0], scheduler="euler")
    with pytest.raises(DiffusionModelError, match="pass depth"):
        diffusion.generate(diffusion.add_branch(model, "concat", True), np.zeros((1, 16, 32), np.uint8))


def test_lora_without_peft_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    model = diffusion.build("micro", (8, 16))
    s = DiffusionSettings(steps=1, batch_size=2, lora_rank=4)
    with pytest.raises(ImportError, match="pip install peft"):
        train(model, Examples([(Halves(2, 0), 0)], model.resolution, s), ["p"], s, progress=False)


# --- training, sampling, scores ------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_model():
    """A micro model briefly trained without conditioning on Halves images (a stand-in for stage 1)."""
    model = diffusion.build("micro", (8, 16), "p", seed=0)
    s = DiffusionSettings(steps=40, batch_size=8, lr=3e-3, warmup_steps=5)
    train(model, Examples([(Halves(64, 0), 0)], model.resolution, s), ["p"], s, progress=False)
    return model


@pytest.mark.parametrize(("branch", "lr"), [("concat", 3e-3), ("controlnet", 1e-2)])
def test_training_a_branch_raises_faithfulness(base_model, branch, lr):
    model = diffusion.add_branch(base_model, branch, depth=False)
    val = Halves(16, 1)
    maps = np.stack([val[i].label for i in range(len(val))])

    def faithfulness():
        images = diffusion.generate(model, maps, steps=10)
        return scores.faithfulness(images, maps, nearest_colour).miou()

    untrained = faithfulness()
    s = DiffusionSettings(steps=60, batch_size=8, lr=lr, warmup_steps=5, p_uncond=0.1)
    train(model, Examples([(Halves(64, 0), 0)], model.resolution, s, {"size": model.condition_size, "depth": None}), ["p"], s, progress=False)
    trained = faithfulness()
    print(f"{branch}: faithfulness (mIoU) untrained {untrained:.1f}, trained {trained:.1f}")
    assert trained > untrained + 12 and trained > 1.8 * untrained, (untrained, trained)
    if branch == "controlnet":
        assert all(not p.requires_grad for p in model.unet.parameters())
        assert torch.equal(model.unet.conv_in.weight, base_model.unet.conv_in.weight)  # the UNet stayed frozen


def test_a_patched_model_learns_its_maps():
    """Patch 2: the UNet sees 4x8 cells of the 8x16 images and still learns which class goes where."""
    model = diffusion.build("micro", (8, 16), "p", seed=0, patch=2)
    s = DiffusionSettings(steps=40, batch_size=8, lr=3e-3, warmup_steps=5)
    train(model, Examples([(Halves(64, 0), 0)], model.resolution, s), ["p"], s, progress=False)
    model = diffusion.add_branch(model, "concat", depth=False)
    maps = np.stack([Halves(16, 1)[i].label for i in range(16)])
    untrained = scores.faithfulness(diffusion.generate(model, maps, steps=10), maps, nearest_colour).miou()
    s = DiffusionSettings(steps=120, batch_size=8, lr=3e-3, warmup_steps=5, p_uncond=0.1)
    train(model, Examples([(Halves(64, 0), 0)], model.resolution, s, {"size": model.condition_size, "depth": None}), ["p"], s, progress=False)
    trained = scores.faithfulness(diffusion.generate(model, maps, steps=10), maps, nearest_colour).miou()
    print(f"patch 2: faithfulness (mIoU) untrained {untrained:.1f}, trained {trained:.1f}")
    assert trained > untrained + 12 and trained > 1.8 * untrained, (untrained, trained)


def test_generate_is_deterministic_and_batch_independent(base_model):
    model = diffusion.add_branch(base_model, "concat", depth=True)
    maps = np.stack([Halves(3, 2)[i].label for i in range(3)])
    depth = np.full(maps.shape, 4.0, np.float32)
    a = diffusion.generate(model, maps, depth, seeds=[7, 8, 9], guidance_scale=2.0, steps=4)
    b = diffusion.generate(model, maps, depth, seeds=[7, 8, 9], guidance_scale=2.0, steps=4)
    alone = diffusion.generate(model, maps[1:2], depth[1:2], seeds=[8], guidance_scale=2.0, steps=4)
    assert np.array_equal(a, b)
    assert np.abs(a[1].astype(int) - alone[0].astype(int)).max() <= 1
    assert not np.array_equal(a[0], diffusion.generate(model, maps[:1], depth[:1], seeds=[70], guidance_scale=2.0, steps=4)[0])


def test_resume_equals_an_uninterrupted_run(tmp_path):
    """Stage-2 training with EMA and condition dropout, killed after a checkpoint, resumes to the same weights."""

    def run(checkpoints, evaluate=None):
        model = diffusion.add_branch(diffusion.build("micro", (8, 16), "p", seed=1), "concat", depth=True)
        s = DiffusionSettings(steps=6, batch_size=4, lr=3e-3, warmup_steps=2, ema=0.9, checkpoint_every=3, p_uncond=0.5, erosion=1, eval_every=4)
        examples = Examples([(Halves(8, 0), 0)], model.resolution, s, {"size": model.condition_size, "depth": "dataset"})
        history = train(model, examples, ["p"], s, checkpoints, evaluate=evaluate, progress=False)
        return model, history

    def crash(model):
        raise KeyboardInterrupt("simulated interruption after the step-3 checkpoint")

    full, full_history = run(None)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "ckpt", evaluate=crash)
    assert (tmp_path / "ckpt" / "step-3").is_dir()
    resumed, resumed_history = run(tmp_path / "ckpt")
    for p, q in zip(full.unet.parameters(), resumed.unet.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)
    assert resumed_history["loss"] == pytest.approx(full_history["loss"], abs=1e-6)


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (4000, 3))
    b = rng.normal(0, 1, (4000, 3)) + np.array([2.0, 0, 0])
    assert scores.frechet_distance(scores.statistics(a), scores.statistics(a)) == pytest.approx(0, abs=1e-6)
    assert scores.frechet_distance(scores.statistics(a), scores.statistics(b)) == pytest.approx(4.0, abs=0.25)
    c = rng.normal(0, 2, (4000, 3))  # same mean, std 2: tr(1 + 4 - 2*2) = 1 per dimension
    assert scores.frechet_distance(scores.statistics(a), scores.statistics(c)) == pytest.approx(3.0, abs=0.3)
    few = rng.normal(0, 1, (8, 64)), rng.normal(0.5, 1, (8, 64))  # singular covariances: still a real, finite number
    assert np.isfinite(scores.frechet_distance(scores.statistics(few[0]), scores.statistics(few[1])))
    indefinite = (np.zeros(2), np.diag([1.0, -1.0]))  # not a covariance: its square root is imaginary
    with pytest.raises(ValueError, match="not real"):
        scores.frechet_distance((np.zeros(2), np.eye(2)), indefinite)


def test_profile_diffusion_fields_make_settings():
    from synthlib.diffusion.common import settings

    cfg = profiles.load("smoke", diff_erosion=2, diff_p_uncond=0.2)
    s1, s2 = settings(cfg, "stage1"), settings(cfg, "stage2")
    assert s1.erosion == 0 and s1.p_uncond == 0 and s1.steps == cfg.diff_stage1_steps
    assert s2.erosion == 2 and s2.p_uncond == 0.2 and s2.steps == cfg.diff_stage2_steps
    assert settings(cfg, "pretrain").jitter == cfg.diff_pretrain_jitter
    with pytest.raises(ValueError, match="diffusion stage 'stage3' unknown"):
        settings(cfg, "stage3")
    assert json.dumps(profiles.describe().loc["diff_resolution"].tolist())


# --- latent models never clip their latents ---------------------------------------------------------


def _tiny_latent_folder(folder, scheduler_config: dict):
    """A tiny random Stable Diffusion folder whose scheduler config is ``scheduler_config``, written as given."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = diffusion.small_tokenizer()
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=48,
        )
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4,
        latent_channels=4,
        scaling_factor=0.18215,
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=8,
        layers_per_block=1,
    )
    for name, part in {"unet": unet, "vae": vae, "text_encoder": text, "tokenizer": tokenizer}.items():
        part.save_pretrained(folder / name)
    (folder / "scheduler").mkdir(parents=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler_config))
    return folder


def test_a_latent_model_without_clip_sample_in_its_config_never_clips(tmp_path):
    from diffusers import DDIMScheduler, DDPMScheduler

    from synthlib.diffusion.sampling import _sampler

    pndm = {  # Stable Diffusion 1.x's scheduler config, less its clip_sample
        "_class_name": "PNDMScheduler",
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "num_train_timesteps": 1000,
        "prediction_type": "epsilon",
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
    }
    folder = _tiny_latent_folder(tmp_path / "sd", pndm)
    assert DDIMScheduler.from_pretrained(folder, subfolder="scheduler").config.clip_sample  # diffusers' default
    model = diffusion.load(folder)
    assert model.space == "latent" and model.scheduler.config.clip_sample is False
    for name in ("ddim", "dpm"):
        assert _sampler(model, name).config.clip_sample is False
    assert diffusion.load(diffusion.save(model, tmp_path / "saved")).scheduler.config.clip_sample is False

    sampler = _sampler(model, "ddim")
    sampler.set_timesteps(10)
    t = sampler.timesteps[0]
    latents = torch.full((1, 4, 4, 8), 3.0)  # Stable Diffusion's scaled latents reach about ±4
    x0 = sampler.step(torch.zeros_like(latents), t, latents).pred_original_sample  # epsilon 0: x0 = x / sqrt(alpha)
    assert torch.allclose(x0, latents / sampler.alphas_cumprod[t].sqrt()) and x0.min() > 3
    model.scheduler = DDPMScheduler.from_config(pndm)  # set in code, clipping on: the sampler still does not clip
    assert model.scheduler.config.clip_sample and _sampler(model, "ddim").config.clip_sample is False

    pixel = diffusion.build("micro", (16, 32))  # pixel space: clipping to [-1, 1] stays on
    assert pixel.scheduler.config.clip_sample is True
    assert _sampler(pixel, "ddim").config.clip_sample is True
    assert diffusion.load(diffusion.save(pixel, tmp_path / "pixel")).scheduler.config.clip_sample is True


# --- the latent (Stable Diffusion) path: scaling, guidance, dropout, targets, precision, data workers ---------


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    """A tiny Stable Diffusion v1 folder in the hub layout (latent space, VAE downsampling by 8)."""
    from synthlib import tiny_hub

    return tiny_hub.write_stable_diffusion(tmp_path_factory.mktemp("hub") / "sd")


def _sd_controlnet(sd_folder, prompt: str = "a photo of a city street") -> diffusion.DiffusionModel:
    """The tiny SD with a ControlNet whose zero-initialised layers are made random, so the map changes predictions."""
    model = diffusion.add_branch(diffusion.build(str(sd_folder), (32, 32), prompt), "controlnet", depth=False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.controlnet.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g))
    return model


def test_latents_carry_the_vae_scaling_factor_both_ways(sd_folder):
    from diffusers import AutoencoderKL

    model = diffusion.build(str(sd_folder), (32, 32), "a photo")
    assert model.vae.config.scaling_factor == pytest.approx(0.18215)  # SD v1's, read from the folder
    vae = AutoencoderKL.from_config({**model.vae.config, "scaling_factor": 0.5})
    vae.load_state_dict(model.vae.state_dict())
    model.vae = vae.eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    latents = model.encode_images(images, torch.Generator().manual_seed(1))
    with torch.no_grad():
        posterior = vae.encode(images.float() / 127.5 - 1).latent_dist
        raw = posterior.sample(torch.Generator().manual_seed(1))  # the same draw, by hand
        decoded_by_hand = vae.decode(raw).sample.clamp(-1, 1)
        decoded_unscaled = vae.decode(latents).sample.clamp(-1, 1)  # what forgetting the factor in decode gives
    assert latents.shape == (2, 4, 4, 4) and latents.dtype == torch.float32
    assert torch.allclose(latents, 0.5 * raw, atol=1e-6)
    assert latents.std().item() == pytest.approx(0.5 * raw.std().item(), rel=1e-5)
    assert latents.mean().item() == pytest.approx(0.5 * raw.mean().item(), abs=1e-6)
    assert torch.allclose(model.decode(latents), decoded_by_hand, atol=1e-5)  # decode divides by the factor again
    assert (model.decode(latents) - decoded_unscaled).abs().max() > 1e-2  # ... which this VAE would show if it did not


def test_guidance_mixes_conditional_and_empty_prompt_unconditional_predictions(sd_folder):
    from synthlib.diffusion.sampling import guided

    model = _sd_controlnet(sd_folder)
    assert model.uncond_prompt == ""  # Stable Diffusion's unconditional prompt
    maps = np.zeros((2, 32, 32), np.uint8)
    maps[:, :, 16:] = CAR
    maps[1, :16] = SKY
    condition = conditioning.encode(maps, model.condition_size)
    x = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([500, 500])
    text, empty = model.encode_prompt([model.prompt]), model.encode_prompt([""])
    zeros = torch.zeros_like(condition)
    rows = []
    hook = model.unet.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[0]))
    with torch.no_grad():
        cond = model.predict(x, t, text.expand(2, -1, -1), condition)
        uncond = model.predict(x, t, empty.expand(2, -1, -1), zeros)
        # both parts of the unconditional input matter here, so getting either wrong would show
        assert (uncond - model.predict(x, t, text.expand(2, -1, -1), zeros)).abs().max() > 1e-3
        assert (uncond - model.predict(x, t, empty.expand(2, -1, -1), condition)).abs().max() > 1e-3
        for w, batch in ((7.5, 4), (2.0, 4), (1.0, 2), (0.0, 2)):
            rows.clear()
            pred = guided(model, x, t, text, empty, condition, w)
            assert torch.allclose(pred, uncond + w * (cond - uncond), atol=1e-4), w
            assert rows == [batch], (w, rows)  # one pass of 2N, or N alone: w = 1 runs no unconditional pass
    hook.remove()


def test_generate_guides_away_from_the_models_unconditional_prompt(sd_folder):
    """Stable Diffusion's unconditional pass gets "", a pixel model trained without text dropout its domain prompt."""
    for model in (_sd_controlnet(sd_folder), diffusion.add_branch(diffusion.build("micro", (16, 32), "p"), "concat", False)):
        seen = []
        real = model.predict

        def record(x, t, text, condition=None, *args, real=real, seen=seen, **kw):
            seen.append((text, condition))
            return real(x, t, text, condition, *args, **kw)

        model.predict = record
        diffusion.generate(model, np.full((1, *model.resolution), CAR, np.uint8), guidance_scale=3.0, steps=1)
        (text, condition), = seen
        expected = model.encode_prompt([model.prompt if model.uncond_prompt is None else ""])
        assert torch.equal(text[0], model.encode_prompt([model.prompt])[0]) and condition[0].any()
        assert torch.equal(text[1], expected[0]) and not condition[1].any()
        assert model.uncond_prompt == ("" if model.space == "latent" else None)


def test_text_and_condition_dropout_drop_the_same_examples():
    n = 64
    cond = torch.rand(n, 3, 2, 2) + 0.1
    text, empty = torch.randn(n, 5, 4), torch.randn(1, 5, 4)
    counts = {}
    for p in (0.0, 0.5, 1.0):
        maps, texts = conditioning.drop_with_text(cond, text, empty, p, torch.Generator().manual_seed(1))
        no_map = (maps == 0).flatten(1).all(1)
        no_text = (texts == empty).flatten(1).all(1)
        assert torch.equal(no_map, no_text)  # the unconditional examples lose both, the others neither
        assert torch.equal(maps[~no_map], cond[~no_map]) and torch.equal(texts[~no_text], text[~no_text])
        same_draws = (conditioning.drop(cond, p, torch.Generator().manual_seed(1)) == 0).flatten(1).all(1)
        assert torch.equal(no_map, same_draws)  # the maps dropped are those ``drop`` drops
        counts[p] = int(no_map.sum())
    assert counts[0.0] == 0 and counts[1.0] == n and 16 < counts[0.5] < 48


def test_training_feeds_dropped_examples_the_empty_prompt_and_no_map():
    """Through the training loop: what the model is given for p_uncond 1, 0 and 0.5, with and without text dropout."""
    for p_uncond, text_dropout in ((1.0, True), (0.0, True), (0.5, True), (1.0, False)):
        model = diffusion.add_branch(diffusion.build("micro", (8, 16), "p", seed=0), "concat", depth=False)
        prompt, empty = model.encode_prompt(["p"])[0], model.encode_prompt([""])[0]
        seen = []
        real = model.predict

        def record(x, t, text, condition=None, *args, real=real, seen=seen, **kw):
            seen.append((text.detach(), condition.detach()))
            return real(x, t, text, condition, *args, **kw)

        model.predict = record
        s = DiffusionSettings(steps=1, batch_size=16, warmup_steps=1, p_uncond=p_uncond, text_dropout=text_dropout)
        train(model, Examples([(Halves(16, 0), 0)], model.resolution, s, {"size": model.condition_size, "depth": None}), ["p"], s, progress=False)
        (text, condition), = seen
        no_map = (condition == 0).flatten(1).all(1)
        got_empty = (text == empty).flatten(1).all(1)
        got_prompt = (text == prompt).flatten(1).all(1)
        assert torch.equal(got_empty | got_prompt, torch.ones(16, dtype=torch.bool))
        if text_dropout:
            assert torch.equal(no_map, got_empty), p_uncond
            assert int(no_map.sum()) == 16 if p_uncond == 1 else int(no_map.sum()) == 0 if p_uncond == 0 else 0 < no_map.sum() < 16
            assert model.uncond_prompt == ""  # sampling's unconditional pass follows what was trained
        else:
            assert no_map.all() and got_prompt.all() and model.uncond_prompt is None  # the embedded profiles' behaviour


def test_training_target_is_the_velocity_or_the_noise():
    from diffusers import DDPMScheduler

    from synthlib.diffusion.train import training_target

    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, 2, 2, generator=g)
    t = torch.tensor([0, 400, 999])
    v_schedule = DDPMScheduler(prediction_type="v_prediction", beta_schedule="squaredcos_cap_v2")
    a = v_schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    v = training_target(v_schedule, x0, noise, t)
    assert torch.allclose(v, a.sqrt() * noise - (1 - a).sqrt() * x0, atol=1e-6)  # v = sqrt(a) eps - sqrt(1 - a) x0
    assert torch.allclose(v, v_schedule.get_velocity(x0, noise, t))
    xt = v_schedule.add_noise(x0, noise, t)
    assert torch.allclose(a.sqrt() * xt - (1 - a).sqrt() * v, x0, atol=1e-5)  # and x0 is recoverable from it
    eps_schedule = DDPMScheduler(prediction_type="epsilon")
    assert torch.equal(training_target(eps_schedule, x0, noise, t), noise)
    with pytest.raises(ValueError, match="prediction type 'sample' is not supported"):
        training_target(DDPMScheduler(prediction_type="sample"), x0, noise, t)


def test_half_precision_is_for_cuda_only():
    from synthlib.diffusion.precision import device_dtype

    assert device_dtype("float16", "cpu") is torch.float32
    assert device_dtype("bfloat16", torch.device("cpu")) is torch.float32
    assert device_dtype("float16", "cuda") is torch.float16
    assert device_dtype("bfloat16", "cuda:1") is torch.bfloat16
    assert device_dtype("float32", "cuda") is torch.float32
    with pytest.raises(DiffusionModelError, match="diff_inference_dtype 'fp16' unknown; valid: float32, float16, bfloat16"):
        device_dtype("fp16", "cuda")


def test_frozen_modules_at_half_precision_train_and_come_back_exact(sd_folder, monkeypatch):
    """The CUDA path (frozen VAE, text encoder and UNet in half precision, autocast) run on a CPU with bfloat16."""
    from synthlib.diffusion import sampling
    from synthlib.diffusion import train as train_module

    monkeypatch.setattr(train_module, "_frozen_dtype", lambda settings, accelerator: torch.bfloat16)
    model = diffusion.add_branch(diffusion.build(str(sd_folder), (32, 32), "a photo"), "controlnet", depth=False)
    before = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in model.modules().items()}
    s = DiffusionSettings(steps=2, batch_size=2, warmup_steps=1, lr=1e-3, p_uncond=0.5, text_dropout=True, inference_dtype="bfloat16")
    data = Examples([(Halves(4, 0), 0)], (32, 32), s, {"size": model.condition_size, "depth": None})
    history = train(model, data, ["a photo"], s, progress=False)
    assert np.isfinite(history["loss"]).all()
    for name in ("unet", "vae", "text_encoder"):  # frozen: back in float32, not a bit changed by the round trip
        for k, v in getattr(model, name).state_dict().items():
            assert v.dtype == before[name][k].dtype and torch.equal(v, before[name][k]), (name, k)
    assert all(p.dtype == torch.float32 for p in model.controlnet.parameters())
    assert any(not torch.equal(v, before["controlnet"][k]) for k, v in model.controlnet.state_dict().items())
    assert model.inference_dtype == "bfloat16" and model.settings()["inference_dtype"] == "bfloat16"
    monkeypatch.setattr(sampling, "device_dtype", lambda name, device: torch.bfloat16)  # sampling under autocast too
    images = diffusion.generate(model, np.zeros((1, 32, 32), np.uint8), guidance_scale=7.5, steps=2)
    assert images.shape == (1, 32, 32, 3) and images.dtype == np.uint8


def test_the_new_settings_leave_the_embedded_profiles_stage_params_alone():
    from synthlib.diffusion.common import STAGES, settings
    from synthlib.diffusion.train import settings_dict

    legacy = {  # DiffusionSettings' fields before text dropout, inference dtype and data workers existed
        "steps", "batch_size", "lr", "weight_decay", "warmup_steps", "max_grad_norm", "seed", "grad_accum", "ema",
        "lora_rank", "gradient_checkpointing", "mixed_precision", "checkpoint_every", "flip", "jitter", "erosion",
        "p_uncond", "eval_every",
    }  # fmt: skip
    for name in ("smoke", "default"):
        for stage in STAGES:
            assert set(settings_dict(settings(profiles.load(name), stage))) == legacy, (name, stage)
    paper = settings_dict(DiffusionSettings(text_dropout=True, inference_dtype="float16", data_workers=8))
    assert paper["text_dropout"] is True and paper["inference_dtype"] == "float16"
    assert "data_workers" not in paper  # speed only: the same workers-free hash


def test_the_paper_profile_samples_stable_diffusion_with_guidance():
    paper, default = profiles.load("paper"), profiles.load("default")
    assert paper.diff_guidance == paper.gen_guidance == 7.5 and paper.diff_p_uncond == 0.1 and paper.diff_text_dropout
    assert 7.5 in paper.mcoc_grid_guidance and 1.0 not in paper.mcoc_grid_guidance
    assert paper.diff_inference_dtype == "float16" and paper.data_workers == 8
    assert not default.diff_text_dropout and default.diff_inference_dtype == "float32" and default.data_workers == 0


def test_loader_workers_give_the_same_batches():
    import pickle

    from synthlib.diffusion.examples import loader as _loader

    model = diffusion.add_branch(diffusion.build("micro", (8, 16)), "concat", depth=True)
    s = DiffusionSettings(steps=3, batch_size=4, seed=3, erosion=1)
    examples = Examples([(Halves(10, 0), 0), (Halves(6, 5), 0)], model.resolution, s, {"size": model.condition_size, "depth": "dataset"})
    copy = pickle.loads(pickle.dumps(examples))  # workers may get the dataset by pickle (spawn, forkserver)
    assert all(torch.equal(a, b) for a, b in zip(copy[(5, 12)].values(), examples[(5, 12)].values(), strict=True))
    serial = list(_loader(examples, s, 12, workers=0))
    loader = _loader(examples, s, 12, workers=2)
    assert loader.num_workers == 2 and loader.persistent_workers
    parallel = list(loader)
    assert len(serial) == len(parallel) == 3
    for a, b in zip(serial, parallel, strict=True):
        assert a.keys() == b.keys() == {"image", "prompt", "condition"}
        assert all(torch.equal(a[k], b[k]) for k in a)
