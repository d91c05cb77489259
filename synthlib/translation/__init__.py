"""Image-to-image translation baselines: CycleGAN (optionally guided by K target labels), FDA and colour transfer.

``fourier`` holds the training-free methods, ``cyclegan`` the losses and
training loop (``cyclegan_nets`` its networks and image buffer), and
``baselines`` the stage that trains them on a run and writes the translated
training sets ``translated/<method>-<source>`` that stage 06 picks up;
``measures`` measures both directions (training on translated source images; translating
target images to the source style at test time).
"""

from synthlib.translation.baselines import (
    CONSISTENCY,
    DIRECTIONS,
    TO_SOURCE,
    TO_TARGET,
    Translated,
    check,
    cyclegan_settings,
    display_name,
    methods,
    source_models,
    train_cyclegans,
    translator,
    write_sets,
)
from synthlib.translation.cyclegan import CycleGAN, CycleGANSettings, ImageBuffer, translate
from synthlib.translation.fourier import colour_transfer, fda
from synthlib.translation.measures import (
    comparison,
    consistency,
    grid,
    loss_plot,
    test_time,
    trained_on,
    training_summary,
)

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
