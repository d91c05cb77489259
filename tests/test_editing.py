"""Instruction-guided editing (InstructPix2Pix, the SDGPA editor): whole and patch-wise, on a tiny editor in the hub's layout."""

from types import SimpleNamespace

import numpy as np
import pytest

from synthlib import editing, tiny_hub
from synthlib.minicity import MiniCity


@pytest.fixture(scope="module")
def editor(tmp_path_factory):
    folder = tiny_hub.write_stable_diffusion(tmp_path_factory.mktemp("hub") / "instruct-pix2pix", seed=0, editor=True)
    return editing.load_editor(folder, "cpu")


@pytest.fixture(scope="module")
def images():
    return MiniCity("real", "val", 2, 64, 128, seed=0).arrays()[0]


def test_an_instruction_changes_the_edit_and_a_seed_fixes_it(editor, images):
    s = editing.EditSettings(steps=2)
    foggy = editing.edit(editor, images, "make it foggy", s, seed=0, progress=False)
    assert foggy.shape == images.shape and foggy.dtype == np.uint8
    assert np.array_equal(foggy, editing.edit(editor, images, "make it foggy", s, seed=0, progress=False))
    snowy = editing.edit(editor, images, "make it snowy", s, seed=0, progress=False)
    assert np.abs(foggy.astype(int) - snowy).mean() > 0.5
    assert np.abs(foggy.astype(int) - editing.edit(editor, images, "make it foggy", s, seed=1, progress=False)).mean() > 0.5


def test_patchwise_editing_keeps_the_size_and_changes_every_patch(editor, images):
    s = editing.EditSettings(steps=2, patch=(32, 32), overlap=0.5)
    edited = editing.edit(editor, images, "make it foggy", s, seed=0, progress=False)
    assert edited.shape == images.shape
    boxes = editing.patch_boxes(64, 128, (32, 32), 0.5)
    assert len(boxes) == 3 * 7
    for i in range(len(images)):
        for top, left in boxes:
            change = np.abs(edited[i, top : top + 32, left : left + 32].astype(int) - images[i, top : top + 32, left : left + 32])
            assert change.mean() > 1, (i, top, left)
    whole = editing.edit(editor, images, "make it foggy", editing.EditSettings(steps=2), seed=0, progress=False)
    assert np.abs(edited.astype(int) - whole).mean() > 1  # not the whole-image edit


def test_patches_cover_the_image_and_overlap_as_asked():
    assert editing.patch_boxes(64, 128, (32, 32), 0.5) == [(t, left) for t in (0, 16, 32) for left in range(0, 97, 16)]
    boxes = editing.patch_boxes(64, 128, (48, 48), 0.25)  # stride 36; the last patch flush with the border
    assert sorted({t for t, _ in boxes}) == [0, 16] and sorted({left for _, left in boxes}) == [0, 36, 72, 80]
    covered = np.zeros((64, 128), int)
    for top, left in boxes:
        covered[top : top + 48, left : left + 48] += 1
    assert covered.min() >= 1
    assert editing.patch_boxes(64, 128, (64, 128), 0.25) == [(0, 0)]


def test_patches_are_blended_back_by_their_weights():
    """A stand-in editor paints each crop one grey level: one patch's pixels take it, overlaps a weighted mean."""
    levels = iter(range(10, 250, 20))

    class StandIn:
        vae_scale_factor = 8
        unet = SimpleNamespace(config=SimpleNamespace(block_out_channels=(1, 1)))  # sizes in multiples of 16

        def __call__(self, prompt, image, **kwargs):
            return SimpleNamespace(images=np.stack([np.full((*np.asarray(c).shape[:2], 3), next(levels) / 255.0) for c in image]))

    stand_in = StandIn()
    out = editing.edit(stand_in, np.zeros((1, 16, 48, 3), np.uint8), "x", editing.EditSettings(patch=(16, 32), overlap=0.5), progress=False)
    # two patches, at left 0 and 16, painted 10 and 30: columns 0-15 are the first's, 32-47 the second's
    assert (out[0, :, :16] == 10).all() and (out[0, :, 32:] == 30).all()
    w = editing.blend_weights(16, 32)[0]
    expected = (10 * w[16:] + 30 * w[:16]) / (w[16:] + w[:16])
    assert np.array_equal(out[0, 0, 16:32, 0], np.round(expected).astype(np.uint8))
    assert (editing.blend_weights(16, 32) > 0).all() and editing.blend_weights(16, 32)[8, 16] == editing.blend_weights(16, 32).max()


def test_bad_editors_patches_and_settings_are_refused(editor, images, tmp_path):
    with pytest.raises(editing.EditingError, match="takes 4 input channels; an InstructPix2Pix UNet takes 8"):
        editing.load_editor(tiny_hub.write_stable_diffusion(tmp_path / "sd"), "cpu")
    with pytest.raises(editing.EditingError, match=r"patch 24x24: the editor takes sizes that are multiples of 16"):
        editing.edit(editor, images, "x", editing.EditSettings(patch=(24, 24)), progress=False)
    with pytest.raises(editing.EditingError, match=r"patch 80x80 \(height x width\) must fit the 64x128 images"):
        editing.edit(editor, images, "x", editing.EditSettings(patch=(80, 80)), progress=False)
    with pytest.raises(editing.EditingError, match=r"overlap must be in \[0, 1\)"):
        editing.edit(editor, images, "x", editing.EditSettings(patch=(32, 32), overlap=1.0), progress=False)
    with pytest.raises(editing.EditingError, match="uint8 N x H x W x 3"):
        editing.edit(editor, images[0], "x", editing.EditSettings(), progress=False)


def test_a_widened_unet_computes_what_the_prior_did_until_it_is_trained():
    """InstructPix2Pix's start: the image channels' weights are zero, so the editor begins as the prior."""
    import torch
    from diffusers import UNet2DConditionModel

    from synthlib.zoo.editor import widen

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                norm_num_groups=8, cross_attention_dim=8, attention_head_dim=4).eval()  # fmt: skip
    wide = widen(unet, 4).eval()
    x, image, text = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.randn(2, 3, 8)
    with torch.no_grad():
        before = unet(x, 10, encoder_hidden_states=text).sample
        after = wide(torch.cat([x, image], 1), 10, encoder_hidden_states=text).sample
    assert wide.config.in_channels == 8 and torch.equal(before, after)


def test_the_zoo_editor_is_instruct_pix2pix_made_from_the_zoo_prior():
    import torch

    from synthlib import zoo

    editor = editing.load_editor("zoo:editor-tiny", "cpu")
    assert editor.unet.config.in_channels == editing.EDITOR_CHANNELS and zoo.is_built("prior-tiny")
    from diffusers import StableDiffusionPipeline

    base = StableDiffusionPipeline.from_pretrained(zoo.folder("prior-tiny"), safety_checker=None, requires_safety_checker=False)
    for a, b in zip(base.text_encoder.state_dict().values(), editor.text_encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the text encoder and the VAE stay frozen, as in InstructPix2Pix
    assert all(torch.equal(a, b) for a, b in zip(base.vae.state_dict().values(), editor.vae.state_dict().values(), strict=True))
    images = MiniCity("real", "val", 1, 32, 64, seed=0).arrays()[0]
    s = editing.EditSettings(steps=2)
    fog = editing.edit(editor, images, "add fog", s, progress=False)
    night = editing.edit(editor, images, "make it night", s, progress=False)
    assert fog.shape == images.shape and np.abs(fog.astype(int) - night).mean() > 0.5
