"""Checks that a notebook made what it must: the calls of each notebook's last cells.

Every check raises ``CheckError``, an ``AssertionError``, so a notebook whose run
produced garbage (an empty table, an mIoU of 250, a dataset missing half its
images) fails under nbval and papermill (``synthlib reproduce``) alike. The
message names the table, stage or file and says what was wrong. Checks return
what they checked (a table, a count), so a notebook may use the value.

The first functions are generic (``table``, ``values``, ``miou``, ``named``,
``images``, ``dataset``, ``files``, ``stage``); the last ones
(``run_datasets``, ``pseudo_labeller``, ``pseudo_labelled``, ``generated_sets``,
``filtered_sets``, ``translated_sets``, ``translation_rows``,
``segmentation_rows``) derive the expected counts, sizes and rows of one
notebook from the profile and call the generic ones.
"""

from synthlib.checks.generic import TABLES, CheckError, dataset, files, images, miou, named, stage, table, values
from synthlib.checks.notebooks import (
    filtered_sets,
    generated_sets,
    pseudo_labelled,
    pseudo_labeller,
    run_datasets,
    segmentation_rows,
    translated_sets,
    translation_rows,
)

__all__ = [
    "CheckError",
    "TABLES",
    "dataset",
    "files",
    "filtered_sets",
    "generated_sets",
    "images",
    "miou",
    "named",
    "pseudo_labelled",
    "pseudo_labeller",
    "run_datasets",
    "segmentation_rows",
    "stage",
    "table",
    "translated_sets",
    "translation_rows",
    "values",
]
