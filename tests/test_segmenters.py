import math
from types import SimpleNamespace

import accelerate.scheduler
import numpy as np
import pytest
import torch
from accelerate import Accelerator
from transformers import (
    BertConfig,
    SegformerConfig,
    SegformerForImageClassification,
    SegformerForSemanticSegmentation,
    SegformerModel,
)

from synthlib import segmenters, zoo
from synthlib.datasets import Dataset, Sample
from synthlib.labels import CLASS_NAMES, IGNORE
from synthlib.metrics import ConfusionMatrix
from synthlib.segmenters import TrainSettings, uda
from synthlib.segmenters import model as segmenter_model
from synthlib.segmenters.infer import logits
from synthlib.segmenters.model import ModelError
from synthlib.segmenters.train import _Parts, augment, lr_schedule, rcs_weights


class Stripes(Dataset):
    """Sky above road with a car on the horizon; colours carry the classes, plus noise."""

    def __init__(self, n: int, seed: int, tint: float = 0.0, fail_after: int | None = None) -> None:
        self.n, self.seed, self.tint, self.fail_after, self.calls = n, seed, tint, fail_after, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        rng = np.random.default_rng([self.seed, i])
        label = np.zeros((32, 64), np.uint8)
        cut = int(rng.integers(10, 22))
        label[:cut] = 10
        x0 = int(rng.integers(0, 50))
        label[cut - 4 : cut + 6, x0 : x0 + 10] = 13
        image = np.zeros((32, 64, 3), np.float32)
        for c, colour in {10: (90, 140, 220), 0: (100, 100, 100), 13: (200, 30, 30)}.items():
            image[label == c] = colour
        image = np.clip(image + self.tint + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
        return Sample(image, label, id=f"s{i}")


FAST = dict(batch_size=4, lr=2e-3, warmup_steps=3, crop=(32, 48))


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_entropy_and_minent_match_hand_computed_values():
    prob = torch.zeros(1, 19, 1, 2)
    prob[0, 0, 0, 0] = prob[0, 1, 0, 0] = 0.5  # two-way tie
    prob[0, 2, 0, 1] = 1.0  # certain
    ent = uda.entropy_map(prob)
    assert ent[0, 0, 0].item() == pytest.approx(math.log(2) / math.log(19), rel=1e-5)
    assert ent[0, 0, 1].item() == pytest.approx(0.0, abs=1e-6)
    assert uda.minent_loss(prob).item() == pytest.approx(math.log(2) / math.log(19) / 2, rel=1e-5)
    uniform = torch.full((1, 19, 1, 1), 1 / 19)
    assert uda.entropy_map(uniform).item() == pytest.approx(1.0, rel=1e-5)
    assert uda.domain_bce(torch.zeros(1, 1, 2, 2), 1.0).item() == pytest.approx(math.log(2), rel=1e-6)


def test_gradient_reversal_flips_and_scales_gradients():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    (uda.grad_reverse(x, 0.01) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-0.01, -0.02, -0.03]))
    assert torch.equal(uda.grad_reverse(x, 5.0), x)


def test_road_grid_cells_follow_the_crop_in_the_full_image():
    grid, h, w = 3, 60, 120
    rows = np.minimum(np.arange(h) * grid // h, grid - 1)
    cols = np.minimum(np.arange(w) * grid // w, grid - 1)
    cell_map = (rows[:, None] * grid + cols[None, :]).astype(np.uint8)  # each pixel's cell in the full image
    image = np.zeros((h, w, 3), np.uint8)
    rng = np.random.default_rng(0)
    agreement = []
    for _ in range(20):
        _, cells_seen, box = augment(image, cell_map, (30, 50), (0.75, 1.5), True, rng)
        cells = uda.grid_cells(torch.from_numpy(box)[None], (30, 50), grid)[0].numpy()
        valid = cells_seen != IGNORE
        agreement.append((cells[valid] == cells_seen[valid]).mean())
    assert min(agreement) > 0.95  # only pixels on cell borders may differ by rounding
    # a coarse feature map (stride 2) of a flipped crop of the top-right corner: every location in cell 2
    box = torch.tensor([[0.0, 2 / 3, 1 / 3, 1 / 3, 1.0]])
    assert (uda.grid_cells(box, (4, 8), grid) == 2).all()


def test_road_distillation_is_the_mean_l2_norm_per_position_as_in_the_paper():
    features = torch.zeros(1, 2, 1, 2)
    reference = torch.zeros(1, 2, 1, 2)
    features[0, :, 0, 0] = torch.tensor([3.0, 4.0])  # one position 5 away, the other on its reference
    assert uda.distillation_loss(features, reference).item() == pytest.approx(2.5)  # not the MSE, 25 / 4
    features.requires_grad_(True)
    uda.distillation_loss(features, reference).backward()
    assert torch.allclose(features.grad[0, :, 0, 0], torch.tensor([0.3, 0.4]))  # unit direction / N
    assert torch.isfinite(features.grad).all()  # a position on its reference has no NaN gradient


def test_road_spatial_loss_sums_each_regions_mean_over_independent_classifiers():
    grid, channels = 3, 4
    spatial = uda.SpatialDomainClassifier(channels, grid, width=8)
    assert len(spatial.heads) == grid * grid and len({id(h[0].weight) for h in spatial.heads}) == grid * grid
    for head in spatial.heads:  # every classifier says 50/50: each region's mean BCE is log 2
        torch.nn.init.zeros_(head[2].weight)
        torch.nn.init.zeros_(head[2].bias)
    features = torch.randn(2, channels, 6, 12)
    full = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]] * 2)  # whole images: all nine regions present
    target = torch.ones(2)
    assert spatial(features, full, target).item() == pytest.approx(grid * grid * math.log(2), rel=1e-6)
    corner = torch.tensor([[0.0, 0.0, 1 / 3, 1 / 3, 0.0]] * 2)  # crops inside region 0 only
    assert spatial(features, corner, target).item() == pytest.approx(math.log(2), rel=1e-6)
    # a source and a target image: each domain's mean per region, summed
    assert spatial(features, full, torch.tensor([0.0, 1.0])).item() == pytest.approx(2 * grid * grid * math.log(2), rel=1e-6)
    # region 0's classifier sees only region 0: moving it changes only that region's term
    torch.nn.init.constant_(spatial.heads[0][2].bias, 2.0)
    expected = (grid * grid - 1) * math.log(2) + torch.nn.functional.softplus(torch.tensor(-2.0)).item()
    assert spatial(features, full, target).item() == pytest.approx(expected, rel=1e-6)


def test_road_distils_to_the_pretrained_encoder_and_refuses_random_weights():
    settings = TrainSettings(steps=3, checkpoint_every=0, road_dst=True, mixed_precision=False, **FAST)
    with pytest.raises(ValueError, match="pretrained encoder.*zoo:mit-b0"):
        segmenters.train(segmenters.build("mit-tiny-s2"), Stripes(8, 0), settings, target=Stripes(8, 1, tint=30), progress=False)
    with pytest.warns(UserWarning, match="decode head is new"):
        model = segmenters.build("zoo:mit-tiny-s2", seed=0)
    pretrained = {k: v.clone() for k, v in model.segformer.state_dict().items()}
    reference = _Parts(model, settings).reference  # what the training loop distils to
    assert type(reference).__name__ == "SegformerModel" and not reference.training  # the encoder alone, frozen
    assert not any(p.requires_grad for p in reference.parameters())
    history = segmenters.train(model, Stripes(8, 0), settings, target=Stripes(8, 1, tint=30), progress=False)
    assert len(history["road_dst"]) == 3 and all(0 < v < 1e3 for v in history["road_dst"])
    moved = [k for k, v in pretrained.items() if not torch.equal(v, model.segformer.state_dict()[k])]
    assert moved  # training moved the encoder; the copy it imitates stays the zoo's
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in pretrained.items())
    zoo_encoder = SegformerModel.from_pretrained(zoo.resolve("zoo:mit-tiny-s2"))  # the zoo's weights, read afresh
    assert all(torch.equal(v, zoo_encoder.state_dict()[k]) for k, v in reference.state_dict().items())


def test_rare_class_sampling_prefers_images_with_rare_classes():
    presence = np.array([[1, 0], [1, 0], [1, 0], [1, 1]], bool)  # class 1 rare: one image
    weights = rcs_weights(presence, np.array([0.99, 0.01]), temperature=0.1)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[3] > 0.9 and weights[0] == pytest.approx(weights[1])


def test_mean_teacher_warms_up_then_averages_and_copies_batch_norm_statistics():
    student = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.BatchNorm1d(1))
    teacher = uda.MeanTeacher(student, alpha=0.9)
    expected = float(student[0].weight)
    for step, w in enumerate([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0]):
        with torch.no_grad():
            student[0].weight.fill_(w)
            student[1].running_mean.fill_(w)
        teacher.update(student)
        alpha = min(1 - 1 / (step + 1), 0.9)  # 0 (a copy), 1/2, 2/3, ... then the decay itself from step 10
        expected = alpha * expected + (1 - alpha) * w
        assert float(teacher.model.module[0].weight) == pytest.approx(expected, rel=1e-6)
        assert float(teacher.model.module[1].running_mean) == w  # the student's own statistics
    assert int(teacher.model.n_averaged) == 12  # in its state dict, so a resumed run continues the warm-up
    assert not any(p.requires_grad for p in teacher.model.parameters())


def test_class_mix_pastes_half_the_source_classes():
    src_img = torch.full((1, 4, 4, 3), 200, dtype=torch.uint8)
    tgt_img = torch.zeros((1, 4, 4, 3), dtype=torch.uint8)
    src_lab = torch.tensor([[[0, 0, 13, 13]] * 4])
    tgt_lab = torch.full((1, 4, 4), 10)
    weight = torch.full((1, 4, 4), 0.3)
    image, label, w = uda.class_mix(src_img, src_lab, tgt_img, tgt_lab, weight, torch.Generator().manual_seed(0))
    pasted = label != 10
    assert pasted.sum() == 8  # exactly one of the two source classes
    assert (image[pasted] == 200).all() and (image[~pasted] == 0).all()
    assert (w[pasted] == 1).all() and torch.allclose(w[~pasted], torch.tensor(0.3))


def test_tiny_training_lowers_the_loss_and_beats_a_constant_predictor():
    torch.set_num_threads(2)
    model = segmenters.build("mit-tiny-s2", seed=0)
    history = segmenters.train(model, Stripes(40, 0), TrainSettings(steps=30, **FAST), progress=False)
    assert np.mean(history["source"][-5:]) < 0.6 * np.mean(history["source"][:5])
    val = Stripes(16, 99)
    cm = segmenters.evaluate(model, val, progress=False)
    constant = ConfusionMatrix()
    for s in val:
        constant.update(np.zeros_like(s.label), s.label)  # everything road
    assert cm.miou() > constant.miou() + 30
    # sliding-window inference agrees with whole-image inference on most pixels
    images = np.stack([s.image for s in val])
    whole, _ = segmenters.predict(model, images)
    window, conf = segmenters.predict(model, images, window=(32, 32), stride=(16, 16))
    assert (whole == window).mean() > 0.8 and conf.shape == whole.shape and (conf <= 1).all()


@pytest.mark.parametrize("switches", [{}, {"advent": True, "road_dst": True, "road_spt": True, "self_training": True}], ids=["source", "uda"])
def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path, switches):
    settings = TrainSettings(steps=4, checkpoint_every=2, **FAST, **switches)
    target = Stripes(12, 1, tint=30) if switches else None
    spec = "zoo:mit-tiny-s2" if switches else "mit-tiny-s2"  # ROAD's distillation needs a pretrained encoder
    reference = segmenters.build(spec, seed=0)
    segmenters.train(reference, Stripes(12, 0), settings, target=target, progress=False)

    interrupted = segmenters.build(spec, seed=0)
    # accelerate's loader reads one batch ahead: the 13th sample is read in step 3, after the step-2 checkpoint
    with pytest.raises(KeyboardInterrupt):
        segmenters.train(interrupted, Stripes(12, 0, fail_after=3 * 4), settings, target=target, checkpoints=tmp_path, progress=False)
    assert [p.name for p in tmp_path.glob("step-*")] == ["step-2"]
    resumed = segmenters.build(spec, seed=0)
    history = segmenters.train(resumed, Stripes(12, 0), settings, target=target, checkpoints=tmp_path, progress=False)
    assert len(history["source"]) == 4
    assert torch.allclose(_weights(resumed), _weights(reference), atol=1e-6)


def test_uda_needs_a_target_and_models_round_trip(tmp_path):
    with pytest.raises(ValueError, match="need a target dataset"):
        segmenters.train(segmenters.build("mit-tiny"), Stripes(4, 0), TrainSettings(steps=1, advent=True), progress=False)
    model = segmenters.build("mit-tiny", seed=3)
    segmenters.save(model, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    loaded = segmenters.load(tmp_path / "m")
    x = np.random.default_rng(0).integers(0, 255, (2, 32, 64, 3), dtype=np.uint8)
    assert np.allclose(segmenters.predict_proba(model, x), segmenters.predict_proba(loaded, x), atol=1e-6)
    with pytest.raises(ModelError, match="is not a SegFormer folder"):
        segmenters.load(tmp_path)
    with pytest.raises(ModelError, match="pass a local folder"):
        segmenters.load("nvidia/segformer-b0-finetuned-cityscapes-does-not-exist")


TINY = segmenters.ARCHITECTURES["mit-tiny"]  # hidden sizes 16-128, one block a stage


def _encoder_weights(model) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith("segformer.")}


def _head_weights(model) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith("decode_head.")}


def test_an_imagenet_classifier_checkpoint_gives_its_encoder_and_a_new_seeded_head(tmp_path):
    torch.manual_seed(7)
    classifier = SegformerForImageClassification(SegformerConfig(**TINY, num_labels=1000))  # as nvidia/mit-b5
    classifier.save_pretrained(tmp_path / "mit")
    with pytest.warns(UserWarning, match=r"encoder of .*mit \(a 1000-class image classifier\); the decode head is new"):
        model = segmenters.build(str(tmp_path / "mit"), seed=0)
    assert isinstance(model, SegformerForSemanticSegmentation) and model.config.synthlib_init == "encoder"
    assert model.config.num_labels == 19 and model.config.id2label[13] == "car" == CLASS_NAMES[13]
    assert model.config.semantic_loss_ignore_index == IGNORE
    encoder, pretrained = _encoder_weights(model), _encoder_weights(classifier)
    assert encoder.keys() == pretrained.keys() and all(torch.equal(encoder[k], pretrained[k]) for k in encoder)
    assert model.decode_head.classifier.out_channels == 19
    with torch.no_grad():
        assert model(pixel_values=torch.zeros(1, 3, 32, 64)).logits.shape[:2] == (1, 19)
    with pytest.warns(UserWarning):
        again, other = segmenters.build(str(tmp_path / "mit"), seed=0), segmenters.build(str(tmp_path / "mit"), seed=1)
    head, head_again, head_other = _head_weights(model), _head_weights(again), _head_weights(other)
    assert all(torch.equal(head[k], head_again[k]) for k in head)
    assert not torch.equal(head["decode_head.classifier.weight"], head_other["decode_head.classifier.weight"])


def test_a_cityscapes_segmenter_loads_whole_and_one_of_other_classes_keeps_its_encoder(tmp_path):
    model = segmenters.build("mit-tiny", seed=3)
    segmenters.save(model, tmp_path / "cityscapes")
    loaded = segmenters.build(str(tmp_path / "cityscapes"), seed=9)
    assert loaded.config.synthlib_init == "full"
    saved, read = model.state_dict(), loaded.state_dict()
    assert saved.keys() == read.keys() and all(torch.equal(saved[k], read[k]) for k in saved)

    ade = SegformerForSemanticSegmentation(SegformerConfig(**TINY, num_labels=150))  # as an ADE20k SegFormer
    ade.save_pretrained(tmp_path / "ade")
    with pytest.warns(UserWarning, match=r"\(a 150-class segmenter\); the decode head is new"):
        adapted = segmenters.load(tmp_path / "ade")
    assert adapted.config.synthlib_init == "encoder" and adapted.decode_head.classifier.out_channels == 19
    assert all(torch.equal(v, _encoder_weights(ade)[k]) for k, v in _encoder_weights(adapted).items())

    BertConfig().save_pretrained(tmp_path / "bert")
    with pytest.raises(ModelError, match="'bert' model, not a SegFormer"):
        segmenters.load(tmp_path / "bert")


def _lrs(settings: TrainSettings, num_processes: int, monkeypatch) -> list[float]:
    """The learning rate of each micro-batch, the schedule built and stepped as ``train`` does under accelerate."""
    # accelerate steps a prepared scheduler num_processes times per optimiser step; pretend to be that many
    monkeypatch.setattr(accelerate.scheduler, "AcceleratorState", lambda: SimpleNamespace(num_processes=num_processes))
    accelerator = Accelerator(gradient_accumulation_steps=settings.grad_accum)
    layer = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=settings.lr)
    optimizer, scheduler = accelerator.prepare(optimizer, lr_schedule(optimizer, settings, num_processes))
    lrs = []
    for _ in range(settings.steps):
        for _ in range(settings.grad_accum):
            with accelerator.accumulate(layer):
                lrs.append(optimizer.param_groups[0]["lr"])
                accelerator.backward(layer(torch.ones(1, 1)).sum())
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
    return lrs


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_the_learning_rate_schedule_is_that_of_one_process_on_any_number(monkeypatch, grad_accum):
    settings = TrainSettings(steps=10, warmup_steps=3, lr=1.0, grad_accum=grad_accum)
    # transformers' schedule: linear warm-up from 0, then poly (power 1) from the warm-up's end to 0 at the last step
    per_step = [k / 3 if k < 3 else 1 - (k - 3) / 7 for k in range(10)]
    expected = np.repeat(per_step, grad_accum)
    one, two = _lrs(settings, 1, monkeypatch), _lrs(settings, 2, monkeypatch)
    assert one == pytest.approx(expected) and two == pytest.approx(expected)
    assert two[-1] == pytest.approx(1 / 7)  # the last step: one decay step left, not a schedule that ran out halfway
    squared = _lrs(TrainSettings(steps=10, warmup_steps=3, lr=1.0, poly_power=2.0), 2, monkeypatch)
    assert squared == pytest.approx([k / 3 if k < 3 else (1 - (k - 3) / 7) ** 2 for k in range(10)])
    short = _lrs(TrainSettings(steps=3, warmup_steps=50, lr=1.0), 1, monkeypatch)  # the warm-up shortened to fit
    assert short == pytest.approx([0, 0.5, 1.0])


def test_models_go_to_the_device_accelerate_would_use(monkeypatch):
    model = segmenters.build("mit-tiny", seed=0)
    assert segmenter_model.to_accelerator(model) is model and model.device.type == "cpu"  # no accelerator: unchanged
    monkeypatch.setattr(segmenter_model, "processes", lambda: SimpleNamespace(device=torch.device("meta")))
    segmenter_model.to_accelerator(model)
    assert {p.device.type for p in model.parameters()} == {"meta"}


# --- inference: the profile's window and batch cap ------------------------------------------------


def record_inputs(monkeypatch) -> list[tuple[int, int, int]]:
    """(batch, height, width) of every SegFormer forward pass from now on, whichever module makes it."""
    seen = []
    forward = SegformerForSemanticSegmentation.forward

    def recording(self, pixel_values=None, *args, **kwargs):
        seen.append((pixel_values.shape[0], pixel_values.shape[2], pixel_values.shape[3]))
        return forward(self, pixel_values, *args, **kwargs)

    monkeypatch.setattr(SegformerForSemanticSegmentation, "forward", recording)
    return seen


def test_window_and_batch_come_from_the_profile():
    from synthlib import profiles
    from synthlib.segmenters.infer import batch_of, window_of

    paper = profiles.load("paper")
    assert window_of(paper) == (1024, 1024) and batch_of(paper) == paper.seg_batch == 2
    default = profiles.load("default")
    assert window_of(default) is None and batch_of(default) is None  # (): whole images, in their callers' batches
    with pytest.raises(ValueError, match=r"seg_eval_window \(512,\): expected \(h, w\)"):
        window_of(profiles.load("smoke", seg_eval_window=[512]))
    with pytest.raises(ValueError, match="seg_batch 0 must be a positive integer"):
        batch_of(profiles.load("smoke", seg_eval_window=[32, 32], seg_batch=0))


def test_sliding_window_runs_a_window_batch_at_a_time_and_averages_the_windows(monkeypatch):
    model = segmenters.build("mit-tiny-s2", seed=0).eval()
    x = np.random.default_rng(0).integers(0, 255, (2, 32, 64, 3), dtype=np.uint8)
    with torch.no_grad():  # by hand: windows at x = 0, 16, 32 (stride: half the window), averaged where they overlap
        windows = [torch.softmax(logits(model, torch.from_numpy(x[:, :, x0 : x0 + 32])), 1).numpy() for x0 in (0, 16, 32)]
    expected = np.zeros((2, windows[0].shape[1], 32, 64), np.float32)
    expected[..., :16] = windows[0][..., :16]
    expected[..., 16:32] = (windows[0][..., 16:] + windows[1][..., :16]) / 2
    expected[..., 32:48] = (windows[1][..., 16:] + windows[2][..., :16]) / 2
    expected[..., 48:] = windows[2][..., 16:]

    seen = record_inputs(monkeypatch)
    proba = segmenters.predict_proba(model, x, window=(32, 32), batch=2)
    assert np.allclose(proba, expected, atol=1e-6)
    assert seen == [(2, 32, 32), (1, 32, 32)] * 2  # one image's windows, two a pass: never the whole batch of whole images
    pred, conf = segmenters.predict(model, x, window=(32, 32), batch=2)
    assert np.array_equal(pred, proba.argmax(1)) and np.array_equal(conf, proba.max(1))
    assert np.allclose(segmenters.predict_proba(model, x, window=(32, 32)), proba, atol=1e-6)  # no cap: 3 windows a pass
    with pytest.raises(ValueError, match=r"window \(32, 0\): expected \(h, w\), two positive integers"):
        segmenters.predict(model, x, window=(32, 0))
    with pytest.raises(ValueError, match="inference batch 0 must be a positive integer or None"):
        segmenters.predict(model, x, batch=0)


def test_whole_images_go_through_in_one_pass_unless_capped(monkeypatch):
    model = segmenters.build("mit-tiny-s2", seed=0).eval()
    x = np.random.default_rng(1).integers(0, 255, (5, 32, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        whole = torch.softmax(logits(model, torch.from_numpy(x)), 1).numpy()
    seen = record_inputs(monkeypatch)
    pred, conf = segmenters.predict(model, x)  # no cap: the caller's batch, bit for bit the numbers made before the cap
    assert seen == [(5, 32, 64)] and np.array_equal(pred, whole.argmax(1)) and np.array_equal(conf, whole.max(1))
    assert np.array_equal(segmenters.predict_proba(model, x, window=(32, 64)), whole)  # a window the size of the image
    seen.clear()
    capped = segmenters.predict_proba(model, x, batch=2)
    assert seen == [(2, 32, 64), (2, 32, 64), (1, 32, 64)]
    assert np.allclose(capped, whole, atol=1e-6)  # float sums change with the batch size: not bit for bit
