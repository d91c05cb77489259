"""The embedded model zoo: pretrained weights standing in for the hub's, built once per machine.

Real runs start from downloaded weights (an ImageNet-pretrained MiT encoder, Stable
Diffusion). The embedded profiles start from these, trained on minicity's
domain-randomised ``mix`` corpus (never the target's look or labels):

- ``mit-b0``, ``mit-tiny-s2``: SegFormer MiT image classifiers (``nvidia/mit-b0``'s
  layout), pretrained to tell which classes a crop shows and in what shares;
- ``vae``, ``vae-tiny``: AutoencoderKLs with 4x downsampling;
- ``prior``, ``prior-tiny``: text-conditioned latent diffusion in Stable Diffusion's
  folder layout, on the VAE's latents;
- ``editor``, ``editor-tiny``: InstructPix2Pix made from the prior, taught weather edits
  ("add fog", "make it night") on pairs of mix scenes (``timbrooks/instruct-pix2pix``'s layout).

``synthlib zoo build [NAME ...]`` builds them (resumable, with progress bars);
``synthlib zoo list`` shows where they are. Each lives under ``$SYNTHLIB_ZOO``
(default ``~/.cache/synthlib/zoo``) in a folder keyed by its config and the
fingerprint of its code, with a ``zoo.json`` manifest of how it was made. A profile
field names one as ``zoo:NAME``; ``resolve`` turns that into the folder (building
it when missing), which the models load with ``from_pretrained`` like a hub folder.

    >>> from synthlib import zoo
    >>> zoo.resolve("zoo:mit-tiny-s2")  # doctest: +SKIP
    '/home/me/.cache/synthlib/zoo/mit-tiny-s2-1a2b3c4d5e6f'
"""

from __future__ import annotations

from synthlib.zoo.cache import ENV_VAR, MANIFEST, build, folder, is_built, is_zoo, key, manifest, resolve, root, verify
from synthlib.zoo.registry import MODELS, ZooError, ZooModel, get

__all__ = [
    "ENV_VAR", "MANIFEST", "MODELS", "ZooError", "ZooModel", "build", "folder", "get", "is_built", "is_zoo", "key",
    "manifest", "resolve", "root", "verify",
]  # fmt: skip
