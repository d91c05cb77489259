"""synthlib: cheap synthetic urban scenes -> target-domain segmentation training data.

Stages (one module or sub-package each, in pipeline order): data, pseudo_labels,
diffusion (stage 1 and 2), generation, mcoc, segmentation, tables. Shared pieces
below all stages: labels, datasets, metrics, profiles, runs, minicity, viz.
"""

__version__ = "0.1.0"
