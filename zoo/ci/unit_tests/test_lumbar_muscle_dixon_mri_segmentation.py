"""Model-zoo unit tests of the lumbar_muscle_dixon_mri_segmentation bundle, for the zoo's ci/unit_tests/runner.py.

Shaped like the zoo's test_spleen_ct_segmentation.py: each workflow (train, train + evaluate, inference) is built with
ConfigWorkflow from the bundle folder, its properties checked, then run on a few tiny synthetic Dixon phantoms made by
the bundle's own generator (random noise would be refused as Dixon input). Weights come from large_files.yml
(ci/verify_bundle.py downloads them first). Run from the zoo repository root:
    python ci/unit_tests/runner.py --b lumbar_muscle_dixon_mri_segmentation
"""

import os
import shutil
import sys
import tempfile
import unittest

from monai.bundle import ConfigWorkflow
from parameterized import parameterized
from utils import check_workflow

BUNDLE_ROOT = "models/lumbar_muscle_dixon_mri_segmentation"
SMALL = {"working_spacing": [8.0, 8.0, 12.0]}
TEST_CASE_1 = [  # train, evaluate
    {
        "bundle_root": BUNDLE_ROOT,
        "epochs": 1,
        "val_interval": 1,
        "patch_size": [32, 32, 16],
        "num_workers": 0,
        "train#dataset#cache_rate": 0.0,
        "validate#dataset#cache_rate": 0.0,
        **SMALL,
    }
]
TEST_CASE_2 = [{"bundle_root": BUNDLE_ROOT, "roi_size": [64, 64, 32], "write_report": False, **SMALL}]  # inference


def make_phantoms(dataset_dir):
    """Five tiny phantom subjects (3 training, 1 validation, 1 testing) with a datalist, as the bundle expects."""
    sys.path.insert(0, os.path.abspath(BUNDLE_ROOT))
    from scripts.phantom import generate_cohort

    generate_cohort(
        dataset_dir, n=5, seed=3, geometry="tiny", variety=False, n_validation=1, n_testing=1, progress=False
    )


def test_order(test_name1, test_name2):
    def get_order(name):
        if "train" in name:
            return 1
        if "eval" in name:
            return 2
        if "infer" in name:
            return 3
        return 4

    return get_order(test_name1) - get_order(test_name2)


class TestLumbarMuscleDixonSeg(unittest.TestCase):
    def setUp(self):
        self.work_dir = tempfile.mkdtemp()
        self.dataset_dir = os.path.join(self.work_dir, "data")
        make_phantoms(self.dataset_dir)

    def tearDown(self):
        shutil.rmtree(self.work_dir)

    def _workflow(self, workflow_type, config_files, override):
        return ConfigWorkflow(
            workflow_type=workflow_type,
            config_file=[os.path.join(BUNDLE_ROOT, "configs", f) for f in config_files],
            logging_file=os.path.join(BUNDLE_ROOT, "configs/logging.conf"),
            meta_file=os.path.join(BUNDLE_ROOT, "configs/metadata.json"),
            **override,
        )

    @parameterized.expand([TEST_CASE_1])
    def test_train_eval_config(self, override):
        override = dict(
            override,
            dataset_dir=self.dataset_dir,
            output_dir=os.path.join(self.work_dir, "eval"),
            ckpt_dir=os.path.join(self.work_dir, "models"),
        )
        trainer = self._workflow("train", ["train.json"], override)
        check_workflow(trainer, check_properties=True)
        self.assertTrue(os.path.isfile(os.path.join(self.work_dir, "models", "model.pt")))
        # the evaluate overlay scores the bundle's own weights
        validator = self._workflow("train", ["train.json", "evaluate.json"], override)
        check_workflow(validator, check_properties=True)

    @parameterized.expand([TEST_CASE_2])
    def test_infer_config(self, override):
        out = os.path.join(self.work_dir, "eval")
        override = dict(override, dataset_dir=self.dataset_dir, output_dir=out)
        inferrer = self._workflow("infer", ["inference.json"], override)
        check_workflow(inferrer, check_properties=True)
        self.assertTrue(os.path.isfile(os.path.join(out, "cohort_ff_table.csv")))


if __name__ == "__main__":
    loader = unittest.TestLoader()
    loader.sortTestMethodsUsing = test_order
    unittest.main(testLoader=loader)
