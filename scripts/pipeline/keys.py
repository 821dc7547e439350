"""Names shared by the steps of configs/inference.json: the data-dictionary keys and the output-folder layout.

Each subject travels through the pipeline as one data dictionary. The loader puts the subject's Dixon images in it
(:mod:`scripts.pipeline.dixon_entry`), the network adds the label map, and each quantification step adds what it
computes under its own key, so every step reads its inputs from the dictionary and nothing is handed over outside it.
"""

from __future__ import annotations

#: Dixon roles of a data-list entry (role -> path of a NIfTI file), in the order the reader checks them
DIXON_ROLES: tuple[str, ...] = ("water", "fat", "inphase", "opposed", "ff")

#: prefix of the keys holding the subject's Dixon images, ``dixon_water`` etc. (``(I, J, K)`` MetaTensors, stored
#: orientation, the scan's affine)
DIXON_IMAGE_PREFIX = "dixon_"
#: key of the scan's description (JSON text: subject, files, geometry, warnings, corrections)
SCAN_INFO_KEY = "dixon_scan"
#: key of the run manifest (:class:`scripts.pipeline.run_record.RunRecord`) of the subject being written
MANIFEST_KEY = "run_manifest"
#: key of the folder where the subject's results are being written (``output_dir/.staging/<subject>``)
RESULTS_DIR_KEY = "results_dir"
#: key of the FF map and its provenance (:class:`FFResult`, native Dixon grid)
FF_KEY = "ff_map"
#: key of the network's confidence in each label (plain dict: label -> figures of
#: :func:`scripts.quality.confidence.label_confidence`, from the softmax on the 2x2x4 mm working grid)
CONFIDENCE_KEY = "network_confidence"
#: key of how the vertebral bodies were named (plain dict of
#: :meth:`scripts.quantification.vertebra_naming.NamingResult.to_meta`), absent without vertebral labels
VERTEBRA_NAMING_KEY = "vertebra_naming"
#: key of the spine network's output: ``(3, X, Y, Z)`` probabilities on the working grid
#: (:class:`scripts.pipeline.spine_network.SpineSegmentd`), then the ``(1, X, Y, Z)`` uint8 classes on the input grid
SPINE_KEY = "spine"
#: key of the vertebral bodies found in the FF map (:class:`scripts.quality.image_spine.ImageSpine`) by
#: :class:`scripts.pipeline.image_vertebrae.VertebraeFromFFMapd` when it could not name them, kept so that the quality
#: verdict does not search the same map again; absent otherwise
IMAGE_SPINE_KEY = "image_spine"
#: key of the label map resampled onto the FF grid (``(I, J, K)`` uint8 array)
LABEL_ON_FF_GRID_KEY = "label_on_ff_grid"
#: key of the fat-water swap check (:class:`SwapReport`, or None without water and fat images)
SWAP_KEY = "swap_report"
#: key of the per-muscle statistics (:class:`QuantResult`: FF table and per-slice profiles)
STATS_KEY = "ff_statistics"
#: key of the per-level table (DataFrame of :func:`scripts.quantification.level_statistics.level_statistics`), absent
#: when the label map holds no vertebral labels
LEVELS_KEY = "level_statistics"
#: key of the subject's rows for the run's per-level cohort table, added when the subject is finished
LEVEL_ROWS_KEY = "cohort_level_rows"
#: key of the comparison with the normative reference (DataFrame, one row per muscle and side)
NORMATIVE_KEY = "normative_comparison"
#: key of the subject's rows for the run's cohort table, added when the subject is finished
ROWS_KEY = "cohort_rows"

#: file marking a subject's results as complete (see :class:`scripts.pipeline.mark_done.MarkDoned`)
DONE_SUFFIX = "_done.json"
#: hidden folder of ``output_dir`` where a subject's new results are written until all are complete; MarkDoned then
#: swaps the whole folder in, so a run that fails or is killed part-way leaves the earlier results untouched
STAGING_DIR = ".staging"
