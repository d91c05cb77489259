import warnings

import numpy as np
import pytest
import torch
from torch import nn

from synthlib import profiles, runs, segmenters
from synthlib.datasets import Dataset, Sample, write_cityscapes
from synthlib.translation import baselines, cyclegan, fourier, measures
from synthlib.translation.cyclegan import CycleGAN, CycleGANSettings, ImageBuffer, PatchDiscriminator


class Scenes(Dataset):
    """Sky over road with a car; the domain decides the palette (and noise), like a source and a target style."""

    PALETTES = {"source": {10: (90, 140, 220), 0: (100, 100, 100), 13: (200, 30, 30)}, "target": {10: (200, 200, 190), 0: (60, 70, 60), 13: (120, 40, 90)}}

    def __init__(self, n: int, domain: str, size: tuple[int, int] = (32, 32), fail_after: int | None = None) -> None:
        self.n, self.domain, self.size, self.fail_after, self.calls = n, domain, size, fail_after, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        rng = np.random.default_rng([("source", "target").index(self.domain), i])
        h, w = self.size
        label = np.zeros((h, w), np.uint8)
        cut = int(rng.integers(h // 3, 2 * h // 3))
        label[:cut] = 10
        x0 = int(rng.integers(0, w - 8))
        label[cut - 3 : cut + 4, x0 : x0 + 8] = 13
        image = np.zeros((h, w, 3), np.float32)
        for c, colour in self.PALETTES[self.domain].items():
            image[label == c] = colour
        noise = 15 if self.domain == "target" else 3
        image = np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
        return Sample(image, label, id=f"{self.domain}_{i:03d}")


TINY = dict(ngf=8, ndf=8, blocks=1, disc_layers=2, batch_size=2, lr=2e-3, buffer_size=2, checkpoint_every=0)


def _weights(model: CycleGAN) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for net in model.networks() for p in net.parameters()])


# --- losses and buffer --------------------------------------------------------------------


def test_cycle_loss_is_zero_for_identity_generators_and_measures_the_round_trip_otherwise():
    x_s, x_t = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    discs = PatchDiscriminator(8, 2), PatchDiscriminator(8, 2)
    settings = CycleGANSettings(**TINY)
    losses, fake_s, fake_t = cyclegan.generator_losses(CycleGAN(nn.Identity(), nn.Identity(), *discs), x_s, x_t, settings)
    assert losses["cycle_source"] == 0 and losses["cycle_target"] == 0 and losses["identity"] == 0
    assert torch.equal(fake_t, x_s) and torch.equal(fake_s, x_t)

    class Shift(nn.Module):  # each generator adds 0.1, so a round trip is off by exactly 0.2
        def forward(self, x):
            return x + 0.1

    losses, _, _ = cyclegan.generator_losses(CycleGAN(Shift(), Shift(), *discs), x_s, x_t, settings)
    assert losses["cycle_source"].item() == pytest.approx(0.2, abs=1e-6)
    assert losses["cycle_target"].item() == pytest.approx(0.2, abs=1e-6)
    assert losses["identity"].item() == pytest.approx(0.2, abs=1e-6)  # 0.1 per generator


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_image_buffer_returns_earlier_images_with_the_documented_probability(p):
    buffer, generator = ImageBuffer(size=4, p_earlier=p), torch.Generator().manual_seed(0)
    tag = lambda value: torch.full((1, 2, 2), float(value))  # noqa: E731 - an image whose pixels name it
    for i in range(4):  # filling up: every image comes back as it is
        assert buffer.query(tag(i)[None], generator)[0, 0, 0, 0] == i
    earlier, n = 0, 4000
    for i in range(4, 4 + n):
        returned = int(buffer.query(tag(i)[None], generator)[0, 0, 0, 0])
        assert returned <= i and len(buffer.images) == 4
        earlier += returned != i
        assert any(int(img[0, 0, 0]) == i for img in buffer.images) == (returned != i)  # the new image took its place
    assert earlier / n == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / n))
    assert torch.equal(ImageBuffer(0).query(tag(7)[None], generator), tag(7)[None])


# --- FDA and colour transfer --------------------------------------------------------------


def test_fda_with_beta_zero_returns_the_source_unchanged():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 20, 28, 3), dtype=np.uint8)
    references = rng.integers(0, 256, (3, 20, 28, 3), dtype=np.uint8)
    assert np.array_equal(fourier.fda(images, references, 0.0), images)


@pytest.mark.parametrize("beta,half", [(3.2 / 16, 3), (3.0 / 16, 2), (0.5, 7)])
def test_fda_swaps_exactly_the_centre_square_of_the_amplitude_spectrum(beta, half):
    rng = np.random.default_rng(1)
    source, reference = rng.normal(size=(16, 24, 3)), rng.normal(size=(16, 24, 3))  # min(h, w) = 16
    out = fourier.amplitude_swap(source, reference, beta)
    spectrum = lambda x: np.fft.fftshift(np.fft.fft2(x, axes=(0, 1)), axes=(0, 1))  # noqa: E731
    f_out, f_src, f_ref = spectrum(out), spectrum(source), spectrum(reference)
    inside = np.zeros((16, 24), bool)
    inside[8 - half : 8 + half + 1, 12 - half : 12 + half + 1] = True  # DC sits at (h // 2, w // 2) after fftshift
    assert np.allclose(np.abs(f_out)[inside], np.abs(f_ref)[inside])
    assert np.allclose(np.abs(f_out)[~inside], np.abs(f_src)[~inside])
    assert not np.allclose(np.abs(f_out)[inside], np.abs(f_src)[inside])
    assert np.allclose(np.exp(1j * np.angle(f_out)), np.exp(1j * np.angle(f_src)))  # the phase is the source's
    assert np.isrealobj(out)


def test_fda_and_colour_transfer_carry_the_reference_colours():
    src, ref = Scenes(1, "source")[0].image[None], Scenes(1, "target")[0].image[None]
    fda = fourier.fda(src, ref, 0.1)
    assert np.allclose(fda.mean((0, 1, 2)), ref.mean((0, 1, 2)), atol=2)  # the DC term (mean colour) is the reference's
    lab_out, lab_ref = fourier.rgb_to_lab(fourier.colour_transfer(src, ref)), fourier.rgb_to_lab(ref)
    assert np.allclose(lab_out.mean((0, 1, 2)), lab_ref.mean((0, 1, 2)), atol=1.5)
    assert np.allclose(lab_out.std((0, 1, 2)), lab_ref.std((0, 1, 2)), rtol=0.1, atol=0.5)


def test_lab_conversion_matches_reference_values_and_round_trips():
    lab = fourier.rgb_to_lab(np.array([[255, 255, 255], [255, 0, 0], [0, 0, 0]], np.uint8))
    assert np.allclose(lab, [[100, 0, 0], [53.24, 80.09, 67.20], [0, 0, 0]], atol=0.02)
    rgb = np.random.default_rng(2).integers(0, 256, (500, 3), dtype=np.uint8)
    assert np.abs(fourier.lab_to_rgb(fourier.rgb_to_lab(rgb)).astype(int) - rgb).max() <= 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # out of gamut is clipped quietly: colour transfer leaves it on purpose
        clipped = fourier.lab_to_rgb(np.array([[50.0, 200.0, -200.0], [120.0, 0, 0], [-10.0, 0, 0]]))
    assert clipped[0, 1] == 0 and clipped[0, 2] == 255 and clipped[0, 0] > 150  # a saturated purple, clipped
    assert clipped[1].tolist() == [255] * 3 and clipped[2].tolist() == [0] * 3  # brighter than white, darker than black


# --- CycleGAN training --------------------------------------------------------------------


def test_tiny_cyclegan_run_lowers_both_cycle_losses(one_thread):
    settings = CycleGANSettings(steps=30, decay_steps=10, **TINY)
    model = CycleGAN.build(settings)
    history = cyclegan.train(model, Scenes(16, "source"), Scenes(16, "target"), settings, progress=False)
    for key in ("cycle_source", "cycle_target"):
        assert np.mean(history[key][-5:]) < 0.6 * np.mean(history[key][:5]), key
    images = Scenes(3, "source", size=(30, 34))[0].image[None]  # not a multiple of 4: padded and cropped back
    assert cyclegan.translate(model.g_st, images).shape == images.shape


def _guidance() -> cyclegan.Guidance:
    return cyclegan.Guidance(segmenters.build("mit-tiny-s2", seed=1), segmenters.build("mit-tiny-s2", seed=2), Scenes(3, "target"))


@pytest.mark.parametrize("guided", [False, True], ids=["plain", "guided"])
def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path, guided, one_thread):
    settings = CycleGANSettings(steps=4, decay_steps=2, **{**TINY, "checkpoint_every": 2})
    reference = CycleGAN.build(settings)
    history_ref = cyclegan.train(reference, Scenes(8, "source"), Scenes(8, "target"), settings, _guidance() if guided else None, progress=False)
    assert ("semantic" in history_ref) == guided

    interrupted = CycleGAN.build(settings)
    # accelerate's loader reads one batch ahead: the 7th source sample is read in step 3, after the step-2 checkpoint
    with pytest.raises(KeyboardInterrupt):
        failing = Scenes(8, "source", fail_after=3 * settings.batch_size)
        cyclegan.train(interrupted, failing, Scenes(8, "target"), settings, _guidance() if guided else None, tmp_path, progress=False)
    assert [p.name for p in tmp_path.glob("step-*")] == ["step-2"]
    resumed = CycleGAN.build(settings)
    history = cyclegan.train(resumed, Scenes(8, "source"), Scenes(8, "target"), settings, _guidance() if guided else None, tmp_path, progress=False)
    assert len(history["cycle_source"]) == 4 and np.allclose(history["d_target"], history_ref["d_target"], atol=1e-6)
    assert torch.allclose(_weights(resumed), _weights(reference), atol=1e-6)


def test_networks_round_trip_through_save_pretrained(tmp_path):
    model = CycleGAN.build(CycleGANSettings(**TINY))
    loaded = CycleGAN.load(model.save(tmp_path / "cyclegan"))
    assert torch.equal(_weights(loaded), _weights(model))
    with pytest.raises(FileNotFoundError, match="holds no saved CycleGAN"):
        CycleGAN.load(tmp_path)


# --- the stage and bad inputs -------------------------------------------------------------


@pytest.fixture
def tiny_run(tmp_path):
    run_dir = runs.open("t", tmp_path)
    for name, domain in (("flat", "source"), ("real", "target")):
        run_dir.stage(f"data/{name}", {}, lambda ctx, d=domain: write_cityscapes(Scenes(5, d), ctx.out, "train", progress=False))
    cfg = profiles.load("smoke", sources=["flat"], target="real")
    return run_dir, cfg


def test_translated_sets_keep_the_source_labels_and_ids(tiny_run):
    run_dir, cfg = tiny_run
    baselines.write_set(run_dir, cfg, "fda", "flat")
    written, source = run_dir.dataset("translated/fda-flat", "train"), run_dir.dataset("data/flat", "train")
    assert len(written) == len(source) == 5
    for a, b in zip(written, source, strict=True):
        assert a.id == b.id and np.array_equal(a.label, b.label) and not np.array_equal(a.image, b.image)
    assert baselines.methods(cfg) == ["fda", "colour", "cyclegan", "cyclegan_k2"]


def test_consistency_is_the_oracle_on_each_translated_set_against_its_maps(tiny_run, monkeypatch):
    """A stand-in oracle that knows the target palette only: colour transfer keeps what it sees, the raw source does not."""
    from synthlib.metrics import ConfusionMatrix

    run_dir, cfg = tiny_run
    palette = Scenes.PALETTES["target"]
    classes, colours = np.array(list(palette)), np.array(list(palette.values()), np.float32)

    def oracle_eval(model, dataset, window=None, desc="", batch=None):
        cm = ConfusionMatrix()
        for x in dataset:
            nearest = ((x.image[..., None, :].astype(np.float32) - colours) ** 2).sum(-1).argmin(-1)
            cm.update(classes[nearest].astype(np.uint8), x.label)
        return cm

    run_dir.stage("models/supervised/data/real", {}, lambda ctx: None)  # stands for stage 01's oracle
    monkeypatch.setattr(baselines.seg, "fit", lambda *a, **k: None)
    monkeypatch.setattr(baselines.seg, "load_model", lambda run_dir, stage: stage)
    monkeypatch.setattr(measures, "evaluate_model", oracle_eval)
    baselines.write_set(run_dir, cfg, "colour", "flat")
    table = measures.consistency(run_dir, cfg)["mIoU"]
    assert list(table.index) == [("flat", "source only"), ("flat", "colour transfer (Lab)")]  # sets not written yet are left out
    assert table[("flat", "colour transfer (Lab)")] > table[("flat", "source only")] + 20, table
    assert run_dir.manifest("i2i/consistency/colour-flat")["params"]["model"] == "models/supervised/data/real"


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"i2i_fda_beta": 0.7}, r"beta=0\.7 is outside \[0, 0\.5\]"),
        ({"i2i_fda_beta": -0.1}, r"beta=-0\.1"),
        ({"i2i_k": [0, 6]}, r"i2i_k=\(0, 6\) asks for K=6 labelled target images, but data/real train has only 5"),
        ({"i2i_k": [2, 2]}, r"i2i_k=\(2, 2\) must list distinct"),
        ({"i2i_decay_steps": 9}, r"i2i_decay_steps=9 exceeds the 4 training steps"),
        ({"i2i_crop": [30, 64]}, r"i2i_crop=\(30, 64\) must be \(h, w\) with both multiples of 4"),
        ({"i2i_batch": 0}, r"i2i_batch=0 must be at least 1"),
    ],
)
def test_bad_parameters_are_named_before_anything_trains(tiny_run, overrides, match):
    run_dir, _ = tiny_run
    cfg = profiles.load("smoke", sources=["flat"], target="real", **overrides)
    with pytest.raises(ValueError, match=match):
        baselines.check(run_dir, cfg)
    assert run_dir.manifest("i2i/cyclegan/flat-k0") is None


def test_bad_arguments_of_the_building_blocks_are_named():
    images = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="beta=1.5"):
        fourier.fda(images, images, 1.5)
    with pytest.raises(ValueError, match="one reference per image"):
        fourier.colour_transfer(images, [])
    with pytest.raises(ValueError, match="K=6 labelled target images requested, but the target train split has 5"):
        baselines.labelled_indices(5, 6, seed=0)
    assert baselines.labelled_indices(10, 3, 0) == sorted(set(baselines.labelled_indices(10, 3, 0)))
    assert set(baselines.labelled_indices(10, 3, 0)) <= set(baselines.labelled_indices(10, 6, 0))  # smaller Ks nest
    with pytest.raises(ValueError, match="p_earlier=1.5"):
        ImageBuffer(4, p_earlier=1.5)
    with pytest.raises(ValueError, match="uint8 NxHxWx3"):
        cyclegan.translate(nn.Conv2d(3, 3, 1), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="translation method 'cyclegan_kx' unknown"):
        baselines.display_name("cyclegan_kx")
