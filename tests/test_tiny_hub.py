"""paper-tiny: the tiny hub-shaped models and real-layout datasets load through the code that reads the real ones."""

from __future__ import annotations

import json

import numpy as np
import png
import pytest
import torch
from PIL import Image

from synthlib import labels, tiny_hub
from synthlib.datasets import DatasetError, open_dataset
from synthlib.datasets.synthia import SynthiaDataset

H, W = 32, 64
N_TRAIN, N_VAL = 2, 2
CONDITIONS = ("fog", "night", "rain", "snow")


def minicity(style: str, split: str, n: int, condition: str = "clear"):
    return open_dataset("minicity", None, split, n=n, style=style, condition=condition, height=H, width=W, seed=0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_data")
    return tiny_hub.write_datasets(folder, height=H, width=W, n_train=N_TRAIN, n_val=N_VAL, conditions=CONDITIONS)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return tiny_hub.write_stable_diffusion(tmp_path_factory.mktemp("hub") / "stable-diffusion-v1-5")


def assert_same_samples(read, written) -> None:
    assert len(read) == len(written)
    for got, want in zip(read, written, strict=True):
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_array_equal(got.label, want.label)


# --- datasets -----------------------------------------------------------------------------


def test_cityscapes_folder_gives_back_the_real_scenes(data):
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        read = open_dataset("cityscapes", data["cityscapes"], split)
        assert read.ids == [f"minicity_{i:06d}_000019" for i in range(n)]
        assert_same_samples(read, minicity("real", split, n))
    assert not (data["cityscapes"] / "depth").exists()  # real Cityscapes has no depth folder


def test_gta5_labels_are_paletted_label_ids_of_the_game_scenes(data):
    read = open_dataset("gta5", data["gta5"], "train")
    assert read.ids == ["00001", "00002"]
    assert_same_samples(read, minicity("game", "train", N_TRAIN))
    with Image.open(data["gta5"] / "labels" / "00001.png") as im:
        assert im.mode == "P"
        road = labels.LABELS[7]
        assert road.name == "road" and im.getpalette()[3 * road.id : 3 * road.id + 3] == list(road.color)


def test_synthia_keeps_its_classes_and_voids_the_ones_it_lacks(data):
    read = open_dataset("synthia", data["synthia"], "train")
    written = minicity("flat", "train", N_TRAIN)
    missing = np.array(SynthiaDataset.missing_classes)
    assert any(np.isin(s.label, missing).any() for s in written)  # the scenes do hold terrain/truck/train
    for got, want in zip(read, written, strict=True):
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_array_equal(got.label, np.where(np.isin(want.label, missing), labels.IGNORE, want.label))
        things = np.isin(got.label, labels.THING_TRAIN_IDS)
        np.testing.assert_array_equal(got.instances[things], want.instances[things])
    width, height, _, info = png.Reader(filename=str(data["synthia"] / "GT" / "LABELS" / "0000000.png")).read()
    assert (height, width, info["bitdepth"], info["planes"]) == (H, W, 16, 3)


def test_acdc_holds_every_condition_in_both_splits(data):
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        read = open_dataset("acdc", data["acdc"], split)  # every condition on disk
        assert read.conditions == CONDITIONS and len(read) == n * len(CONDITIONS)
        for condition in CONDITIONS:
            one = open_dataset("acdc", data["acdc"], split, conditions=[condition])
            assert {s.meta["condition"] for s in one} == {condition}
            assert_same_samples(one, minicity("real", split, n, condition))


def test_write_datasets_refuses_to_overwrite_and_checks_options(data, tmp_path):
    with pytest.raises(DatasetError, match="already exist"):
        tiny_hub.write_datasets(data["gta5"].parent, height=H, width=W)
    with pytest.raises(DatasetError, match="conditions"):
        tiny_hub.write_datasets(tmp_path, conditions=("haze",))
    with pytest.raises(DatasetError, match="1:2"):
        tiny_hub.write_datasets(tmp_path, height=32, width=32)
    assert not list(tmp_path.iterdir())  # nothing written before the errors


# --- models -------------------------------------------------------------------------------


def test_stable_diffusion_folder_runs_in_diffusers_and_synthlib(sd_folder):
    from diffusers import StableDiffusionPipeline

    from synthlib.diffusion import model as diffusion_model

    index = json.loads((sd_folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline" and index["safety_checker"] == [None, None]
    scheduler = json.loads((sd_folder / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "PNDMScheduler" and scheduler["clip_sample"] is False
    betas = (scheduler["beta_schedule"], scheduler["beta_start"], scheduler["beta_end"])
    assert betas == ("scaled_linear", 0.00085, 0.012)

    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, safety_checker=None)
    assert pipe.vae.config.scaling_factor == 0.18215 and pipe.vae_scale_factor == 8
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a photo of a city street", height=64, width=128, num_inference_steps=2, output_type="np",
               generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.images.shape == (1, 64, 128, 3) and np.isfinite(out.images).all()

    model = diffusion_model.load(sd_folder)
    assert model.space == "latent" and model.vae_scale == 8
    assert model.scheduler.config.clip_sample is False  # synthlib's DDPM scheduler reads the key
    assert model.encode_prompt(["a photo of a city street"]).shape == (1, 77, 32)


def test_tokenizer_is_clip_files_with_a_small_vocabulary(sd_folder):
    from transformers import CLIPTokenizer

    files = sorted(p.name for p in (sd_folder / "tokenizer").iterdir())
    assert files == ["merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"]
    tokenizer = CLIPTokenizer.from_pretrained(sd_folder / "tokenizer")
    assert tokenizer.model_max_length == 77 and len(tokenizer) < 1000
    ids = tokenizer("a photo of a city street").input_ids
    tokens = tokenizer.convert_ids_to_tokens(ids)
    words = ["a</w>", "photo</w>", "of</w>", "a</w>", "city</w>", "street</w>"]  # whole words: merged
    assert tokens == ["<|startoftext|>", *words, "<|endoftext|>"]
    other = tokenizer("Wet asphalt, 23:00!").input_ids  # anything else, spelt from bytes
    assert tokenizer.decode(other, skip_special_tokens=True) == "wet asphalt , 2 3 : 0 0 !"
    assert ids[-1] == max(tokenizer.get_vocab().values())  # SD's text encoder pools at the highest id


def test_clip_sample_none_leaves_the_key_out(tmp_path):
    from diffusers import DDPMScheduler

    folder = tiny_hub.write_stable_diffusion(tmp_path / "sd", clip_sample=None)
    assert "clip_sample" not in json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert DDPMScheduler.from_pretrained(folder, subfolder="scheduler").config.clip_sample is True  # diffusers' default


def test_mit_classifier_has_imagenet_labels(tmp_path):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    folder = tiny_hub.write_mit_classifier(tmp_path / "mit-b5")
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["SegformerForImageClassification"] and len(config["id2label"]) == 1000
    assert (folder / "model.safetensors").is_file()
    model = AutoModelForImageClassification.from_pretrained(folder)
    processor = AutoImageProcessor.from_pretrained(folder)
    image = minicity("real", "val", 1)[0].image
    assert model(**processor(images=[image], return_tensors="pt")).logits.shape == (1, 1000)


def test_segformer_cityscapes_loads_as_a_synthlib_segmenter(tmp_path):
    from synthlib.segmenters import model as segmenter

    folder = tiny_hub.write_segformer_cityscapes(tmp_path / "segformer")
    model = segmenter.load(folder)
    assert [model.config.id2label[i] for i in range(labels.NUM_CLASSES)] == list(labels.CLASS_NAMES)
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    assert processor["image_processor_type"] == "SegformerImageProcessor"


def test_depth_model_estimates_a_finite_positive_map_of_the_image_size(tmp_path):
    from synthlib.depth import estimate_depth, load_depth_model

    folder = tiny_hub.write_depth_model(tmp_path / "depth")
    saved = json.loads((folder / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"] == "DPTImageProcessor" and saved["ensure_multiple_of"] == 14
    model, processor = load_depth_model(folder)
    assert model.config.depth_estimation_type == "relative"
    images = [s.image for s in minicity("real", "val", 3)]  # uint8 32x64
    depth = estimate_depth(model, processor, images, batch_size=2)
    assert depth.shape == (3, H, W) and np.isfinite(depth).all()
    assert (depth > 0).all() and depth.max() < 1e3  # no pixel at estimate_depth's zero-disparity clamp


def test_models_are_deterministic_given_the_seed(tmp_path):
    def weights(seed: int, name: str) -> bytes:
        return (tiny_hub.write_mit_classifier(tmp_path / name, seed=seed) / "model.safetensors").read_bytes()

    assert weights(0, "a") == weights(0, "b") != weights(1, "c")


def test_command_line_writes_everything(tmp_path, capsys):
    assert tiny_hub.main([str(tmp_path), "--height", "32", "--n-train", "1", "--n-val", "1"]) == 0
    printed = capsys.readouterr().out
    for name, relative in tiny_hub.MODEL_FOLDERS.items():
        assert (tmp_path / relative / "config.json").is_file() or (tmp_path / relative / "model_index.json").is_file()
        assert name in printed
    for name in tiny_hub.DATASETS:
        assert (tmp_path / "data" / name).is_dir() and str(tmp_path / "data" / name) in printed
