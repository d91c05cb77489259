"""Image-to-image translation baselines: CycleGAN (optionally guided by K target labels), FDA and colour transfer.

``fourier`` holds the training-free methods, ``cyclegan`` the losses and
training loop (``cyclegan_nets`` its networks and image buffer), and
``baselines`` the stage that trains them on a run, writes the translated
training sets ``translated/<method>-<source>`` that stage 06 picks up, and
measures both directions (training on translated source images; translating
target images to the source style at test time).
"""

from synthlib.translation.baselines import (
    CONSISTENCY,
    DIRECTIONS,
    TO_SOURCE,
    TO_TARGET,
    Translated,
    check,
    comparison,
    consistency,
    cyclegan_settings,
    display_name,
    grid,
    loss_plot,
    methods,
    source_models,
    test_time,
    train_cyclegans,
    trained_on,
    training_summary,
    translator,
    write_sets,
)
from synthlib.translation.cyclegan import CycleGAN, CycleGANSettings, ImageBuffer, translate
from synthlib.translation.fourier import colour_transfer, fda

__all__ = [
    "CONSISTENCY",
    "DIRECTIONS",
    "TO_SOURCE",
    "TO_TARGET",
    "CycleGAN",
    "CycleGANSettings",
    "ImageBuffer",
    "Translated",
    "check",
    "colour_transfer",
    "comparison",
    "consistency",
    "cyclegan_settings",
    "display_name",
    "fda",
    "grid",
    "loss_plot",
    "methods",
    "source_models",
    "test_time",
    "train_cyclegans",
    "trained_on",
    "training_summary",
    "translate",
    "translator",
    "write_sets",
]
