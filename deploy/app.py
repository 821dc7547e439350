"""MONAI Deploy (App SDK 4.0.0) application: a lumbar Dixon DICOM study in; a DICOM SEG and the FF table out.

Pipeline (one operator per job)::

    DixonStudyLoaderOperator --image--> MonaiBundleInferenceOperator (this bundle) --pred--> DixonQuantifyOperator
              |                                                                                 |
              +------------------------------------ dixon --------------------------------->+
                                                                                                |
                                                                             result --> DicomSegWriterOperator

- the loader reads the study folder (``-i``), selects the Dixon series with :mod:`scripts.io.dicom_select`
  (vendor ImageType/SeriesDescription tokens, or a user rules file), converts them to NIfTI in a temporary folder and
  loads them with :func:`scripts.io.load.load_dixon` exactly as the plain bundle does; it sends the network
  input (in-phase, else water + fat) as an in-memory ``Image`` with its RAS affine;
- the SDK's bundle operator runs this bundle's preprocessing, network and postprocessing (the eager network with
  ``models/model.pt``, as the plain bundle runs it; it drops loaders and
  savers; ``LoadDixond`` takes the in-memory image, the quantification steps pass it through);
- the quantify operator computes FF with :func:`scripts.quantification.ff_map.compute_ff` and the table with
  :func:`scripts.quantification.statistics.quantify_muscles` on the selected series (the plain bundle's functions and
  settings, so
  the numbers are the plain bundle's), and writes ``<subject>_ff_table.csv/.json`` and ``<subject>_seg.nii.gz``,
  and ``<subject>_ff_levels.csv`` (FF and CSA per vertebral level, :mod:`scripts.pipeline.measure`) when the model
  outputs the vertebral context (labels 9-14);
- the SEG writer writes ``seg/<subject>_seg.dcm``: 8 segments with SNOMED CT codes (:mod:`deploy.dicom_seg`),
  referencing the network-input series, and ``sr/<subject>_ff_sr.dcm``: the FF, volume and quality verdict per
  muscle and side, and the FF and cross-section per vertebral level when there are levels, as a TID 1500
  measurement report referencing the SEG's segments (:mod:`deploy.dicom_sr`).

Usage::

    .venv-deploy/bin/python deploy/app.py -i <study folder> -o <empty output folder> [--rules rules.json]
        [--lowest_vertebra L5] [--overwrite]

``--lowest_vertebra`` (L1-L5) states the lowest lumbar body in the study's field of view, for a study without the
sacrum (the L2-L5 protocol): its vertebral bodies, SEG segments and per-level table are then named from it, as
inference.json's ``--lowest_vertebra`` does (docs/design.md "Levels").

The output folder must be empty (or absent) unless ``--overwrite``: results are never replaced silently.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BUNDLE_DIR = Path(__file__).resolve().parents[1]
if str(BUNDLE_DIR) not in sys.path:
    sys.path.insert(0, str(BUNDLE_DIR))

from monai.deploy.conditions import CountCondition  # noqa: E402
from monai.deploy.core import AppContext, Application, Fragment, Image, IOType, Operator, OperatorSpec  # noqa: E402
from monai.deploy.operators.monai_bundle_inference_operator import (  # noqa: E402
    BundleConfigNames,
    IOMapping,
    MonaiBundleInferenceOperator,
)
from scripts.pipeline.keys import VERTEBRA_NAMING_KEY  # noqa: E402

logger = logging.getLogger("lumbar_dixon_app")


class DixonStudyLoaderOperator(Operator):
    """Select and load the Dixon series of one DICOM study; emit the network input and the loaded scan.

    Outputs:
        image: ``Image`` of the network input, array ``(I, J, K)`` float32 with metadata ``affine`` /
            ``original_affine`` (voxel -> RAS mm), ``spacing``, ``subject``.
        dixon: dict with ``scan`` (:class:`scripts.io.dixon_scan.DixonScan`), ``reference_datasets`` (the DICOM
            slices of the network-input series in K order, for the SEG) and ``series`` (role -> description).

    Args:
        fragment: the application.
        input_folder: the study folder (a folder with several studies is refused).
        rules: user series rules (:func:`scripts.io.dicom_rules.load_rules`), or None.
        work_dir: temporary folder for the converted NIfTI files.
    """

    def __init__(
        self, fragment: Fragment, *args: Any, input_folder: Path, rules: Any, work_dir: Path, **kwargs: Any
    ) -> None:
        self.input_folder = Path(input_folder)
        self.rules = rules
        self.work_dir = Path(work_dir)
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.output("image")
        spec.output("dixon")

    def compute(self, op_input, op_output, context) -> None:
        from scripts.io.dicom_select import select_dixon_series
        from scripts.io.dicom_series import scan_dicom_folder
        from scripts.io.dicom_stack import stack_series
        from scripts.io.dicom_study import convert_dicom_study
        from scripts.io.errors import DixonInputError
        from scripts.io.load import load_dixon
        from scripts.pipeline.network_input import network_input

        start = time.time()
        series = scan_dicom_folder(self.input_folder)
        studies = sorted({s.study_uid for s in series})
        if len(studies) != 1:
            raise DixonInputError(
                f"{self.input_folder}: {len(studies)} studies found ({', '.join(studies)}); the app "
                "reads one study per run: give the folder of one study",
                self.input_folder,
            )
        header = series[0].header
        subject = str(header.get("PatientID") or "subject").replace("/", "_") or "subject"
        entry = convert_dicom_study(series, self.work_dir, subject, self.rules)
        chosen = entry.pop("dicom_series")
        # the same bundle minimum field of view as inference.json (16 working voxels per axis)
        scan = load_dixon(entry, min_shape_mm=[16 * s for s in (2.0, 2.0, 4.0)])
        selected = select_dixon_series(series, self.rules)
        _, affine, datasets = stack_series(selected[scan.reference])
        if not np.allclose(affine, scan.affine, atol=1e-4):
            raise RuntimeError("the reference series moved between conversion and reading")  # cannot happen
        meta = {
            "affine": scan.affine.copy(),
            "original_affine": scan.affine.copy(),
            "spacing": np.asarray(scan.spacing_mm),
            "space": "RAS",
            "original_channel_dim": "no_channel",
            "subject": scan.subject,
            "filename_or_obj": f"{scan.subject}.nii.gz",
        }
        op_output.emit(Image(network_input(scan).astype(np.float32), metadata=meta), "image")
        op_output.emit({"scan": scan, "reference_datasets": datasets, "series": chosen}, "dixon")
        logger.info(
            "%s: Dixon series %s loaded in %.1f s",
            scan.subject,
            ", ".join(f"{r}={v['description']!r}" for r, v in chosen.items()),
            time.time() - start,
        )


class DixonQuantifyOperator(Operator):
    """Per-muscle FF table (and per-level table with the vertebral context) from the bundle's label map and the
    selected Dixon series.

    Inputs:
        pred: the bundle operator's label map ``Image`` (array ``(K, J, I)`` uint8, the network-input grid).
        dixon: the loader's dict.

    Outputs:
        result: dict with ``label`` (``(I, J, K)`` uint8), ``scan``, ``reference_datasets``, ``table`` (the FF
            table with the verdict), ``levels`` (the per-level table, or None without named vertebral bodies).

    Args:
        fragment: the application.
        output_folder: where ``<subject>_ff_table.csv/.json`` and ``<subject>_seg.nii.gz`` go.
        ff_method: :func:`scripts.quantification.ff_map.compute_ff` method (inference.json's default ``"auto"``).
        lowest_vertebra: the app's ``--lowest_vertebra``: where the label map names no body, the bodies found in the
            FF map are named up from it, as the plain bundle does (:mod:`scripts.pipeline.image_vertebrae`).
    """

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        output_folder: Path,
        ff_method: str = "auto",
        lowest_vertebra: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.output_folder = Path(output_folder)
        self.ff_method = ff_method
        self.lowest_vertebra = lowest_vertebra
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("pred")
        spec.input("dixon")
        spec.output("result")

    def compute(self, op_input, op_output, context) -> None:
        import nibabel as nib
        from scripts.pipeline.measure import measure_subject_levels_and_label
        from scripts.quantification.tables import write_tables

        pred = op_input.receive("pred")
        dixon = op_input.receive("dixon")
        scan = dixon["scan"]
        # the SDK sends (K, J, I); the bundle's label map lives on the network-input grid (I, J, K)
        label = np.ascontiguousarray(np.swapaxes(np.asarray(pred.asnumpy()), 0, 2)).astype(np.uint8)
        if label.shape != scan.shape:
            raise RuntimeError(f"label map {label.shape} is not on the input grid {scan.shape}")
        # the plain bundle's own measurement, with its defaults (no erosion override)
        naming = (pred.metadata() or {}).get(VERTEBRA_NAMING_KEY)
        result, _, levels, label = measure_subject_levels_and_label(
            scan, label, scan.affine, ff_method=self.ff_method, naming=naming, lowest_vertebra=self.lowest_vertebra
        )
        self.output_folder.mkdir(parents=True, exist_ok=True)
        # with the vertebral context (labels 9-14: the spine network or a 15-output model) also
        # <subject>_ff_levels.csv, as the plain bundle writes it
        write_tables(result, self.output_folder, scan.subject, overwrite=False, levels=levels)
        seg_img = nib.Nifti1Image(label, scan.affine)
        seg_img.header.set_qform(scan.affine, code=1)
        seg_img.header.set_sform(scan.affine, code=1)
        nib.save(seg_img, str(self.output_folder / f"{scan.subject}_seg.nii.gz"))
        logger.info("%s: FF table written to %s", scan.subject, self.output_folder)
        op_output.emit({"label": label, "table": result.table, "levels": levels, **dixon}, "result")


class DicomSegWriterOperator(Operator):
    """Write the label map as a DICOM SEG (8 coded segments) referencing the network-input series, and the FF
    table with each side's quality verdict, and the per-level table when there is one, as a DICOM SR (TID 1500)
    referencing the SEG's segments.

    Args:
        fragment: the application.
        output_folder: the SEG goes to ``output_folder/seg/<subject>_seg.dcm``, the SR to
            ``output_folder/sr/<subject>_ff_sr.dcm``.
        version: bundle version (algorithm version in the SEG).
    """

    def __init__(self, fragment: Fragment, *args: Any, output_folder: Path, version: str, **kwargs: Any) -> None:
        self.output_folder = Path(output_folder)
        self.version = version
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("result")

    def compute(self, op_input, op_output, context) -> None:
        from deploy.dicom_seg import write_seg
        from deploy.dicom_sr import write_sr

        result = op_input.receive("result")
        label = result["label"]
        subject = result["scan"].subject
        path = self.output_folder / "seg" / f"{subject}_seg.dcm"
        write_seg(label.transpose(2, 1, 0), result["reference_datasets"], path, self.version)
        logger.info("DICOM SEG written: %s", path)
        sr_path = write_sr(
            result["table"],
            path,
            result["reference_datasets"],
            self.output_folder / "sr" / f"{subject}_ff_sr.dcm",
            self.version,
            levels=result.get("levels"),
        )
        logger.info("DICOM SR written: %s", sr_path)


class EagerBundleInferenceOperator(MonaiBundleInferenceOperator):
    """The SDK's bundle operator, predicting with the bundle's eager network and ``models/model.pt``.

    Why: the SDK loads ``models/model.ts`` (TorchScript) when a bundle has one. TorchScript modules take no forward
    hooks, so the batch-norm adaptation's volume statistics (inference.json's default ``adapt_statistics: volume``)
    would fall back to the window statistics there, and the app's label maps would differ from the plain bundle's
    for the same scan. The eager network (inference.json's ``network`` node, the weights of ``models/model.pt``)
    gives exactly the plain bundle's.
    """

    _eager: Any = None

    def __init__(self, *args: Any, lowest_vertebra: str | None = None, **kwargs: Any) -> None:
        self.lowest_vertebra = lowest_vertebra
        super().__init__(*args, **kwargs)

    def _init_config(self, config_names: Any) -> None:
        # The SDK parses inference.json as it is, with bundle_root "." (the working folder): the spine network's
        # weights (spine_ckpt_path, models/spine_model.pt) and the bundle version would be looked up where the app
        # is started, and a run started elsewhere would go on without the vertebral outputs. The SDK gives no hook
        # between reading the config and parsing its post-processing, so its reader is wrapped for this one call.
        import monai.deploy.operators.monai_bundle_inference_operator as sdk_operator

        read = sdk_operator.get_bundle_config

        def read_with_root(bundle_path: Any, names: Any) -> Any:
            parser = read(bundle_path, names)
            parser["bundle_root"] = str(BUNDLE_DIR)
            # the app's --lowest_vertebra, as the plain bundle's command line sets it
            parser["lowest_vertebra"] = self.lowest_vertebra
            return parser

        sdk_operator.get_bundle_config = read_with_root
        try:
            super()._init_config(config_names)
        finally:
            sdk_operator.get_bundle_config = read

    def post_process(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        # the SDK sends on the label map only; how its vertebral bodies were named (the spine network's count from
        # the sacrum) is a record of its own in the post-processing's dictionary, kept here for _send_output
        outputs = super().post_process(data, *args, **kwargs)
        self._naming = outputs.get(VERTEBRA_NAMING_KEY) if isinstance(outputs, dict) else None
        return outputs

    def _send_output(self, value: Any, name: str, metadata: dict, op_output: Any, context: Any) -> None:
        if getattr(self, "_naming", None) is not None:
            metadata = {**metadata, VERTEBRA_NAMING_KEY: self._naming}
        super()._send_output(value, name, metadata, op_output, context)

    def predict(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        if self._eager is None:
            import torch

            network = self._parser.get_parsed_content("network")
            weights = torch.load(BUNDLE_DIR / "models" / "model.pt", map_location="cpu", weights_only=True)
            network.load_state_dict(weights)
            self._eager = network.eval()
        return self._inferer(data, self._eager, *args, **kwargs)


class LumbarDixonApp(Application):
    """Lumbar Dixon muscle segmentation and fat fraction: DICOM study in, DICOM SEG + FF table out."""

    def __init__(self, *args: Any, rules: Any = None, lowest_vertebra: str | None = None, **kwargs: Any) -> None:
        self.rules = rules
        self.lowest_vertebra = lowest_vertebra
        super().__init__(*args, **kwargs)

    def compose(self) -> None:
        import json

        ctx: AppContext = Application.init_app_context(self.argv)
        # the SDK would take its default model path ("models", relative to the working folder; the bundle's own
        # models/ when run from the bundle root) for a bundle and fail on it: this app always runs the bundle it
        # ships with, from bundle_path below
        ctx.models = None
        output = Path(ctx.output_path)
        version = json.loads((BUNDLE_DIR / "configs" / "metadata.json").read_text())["version"]
        self._work = Path(tempfile.mkdtemp(prefix="lumbar_dixon_app_"))
        loader = DixonStudyLoaderOperator(
            self,
            CountCondition(self, 1),
            input_folder=Path(ctx.input_path),
            rules=self.rules,
            work_dir=self._work,
            name="dixon_loader",
        )
        infer = EagerBundleInferenceOperator(
            self,
            input_mapping=[IOMapping("image", Image, IOType.IN_MEMORY)],
            output_mapping=[IOMapping("pred", Image, IOType.IN_MEMORY)],
            app_context=ctx,
            bundle_config_names=BundleConfigNames(config_names=["inference"]),
            bundle_path=BUNDLE_DIR,
            lowest_vertebra=self.lowest_vertebra,
            name="bundle_inference",
        )
        quantify = DixonQuantifyOperator(
            self, output_folder=output, lowest_vertebra=self.lowest_vertebra, name="ff_quantify"
        )
        writer = DicomSegWriterOperator(self, output_folder=output, version=version, name="seg_writer")
        self.add_flow(loader, infer, {("image", "image")})
        self.add_flow(loader, quantify, {("dixon", "dixon")})
        self.add_flow(infer, quantify, {("pred", "pred")})
        self.add_flow(quantify, writer, {("result", "result")})


def _app_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This app's own options; the rest (``-i``, ``-o``, ``-m``, ``-l``) go to the SDK."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--rules", default=None, help="JSON file {role: {DICOM keyword: regex}} (docs/guides/dicom.md)")
    parser.add_argument("--overwrite", action="store_true", help="allow a non-empty output folder")
    parser.add_argument(
        "--lowest_vertebra",
        default=None,
        help="the lowest lumbar body in the field of view (L1-L5), for a study without the sacrum",
    )
    parser.add_argument("-o", "--output", default=None)
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the app; returns the exit status (2 for a refused output folder or bad rules)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv if argv is None else argv)
    own, rest = _app_args(argv[1:])
    from scripts.io.dicom_rules import load_rules
    from scripts.pipeline.lowest_vertebra import StatedLowestVertebra

    try:
        rules = load_rules(own.rules)
        lowest = StatedLowestVertebra(own.lowest_vertebra).default  # checked and spelt as the bundle spells it
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if own.output is not None:
        out = Path(own.output)
        if out.exists() and any(out.iterdir()) and not own.overwrite:
            print(
                f"error: output folder {out} is not empty; choose an empty folder or pass --overwrite", file=sys.stderr
            )
            return 2
        if own.overwrite and out.exists():
            for sub in ("seg", "sr"):
                shutil.rmtree(out / sub, ignore_errors=True)
            for f in out.glob("*_ff_table.*"):
                f.unlink()
            for f in out.glob("*_seg.nii.gz"):
                f.unlink()
        rest += ["-o", str(out)]
    # the SDK reads -i/-o/-m/-l from sys.argv (holoscan's Application drops its first item itself)
    sys.argv = [argv[0], *rest]
    app = LumbarDixonApp(rules=rules, lowest_vertebra=lowest)
    try:
        app.run()
    finally:
        shutil.rmtree(getattr(app, "_work", ""), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
