"""Multi-process model-zoo unit test of the lumbar_muscle_dixon_mri_segmentation bundle (train.json +
multi_gpu_train.json under torchrun), for the zoo's ci/unit_tests/runner.py with --dist True.

As the zoo's test_spleen_ct_segmentation_dist.py, but with two processes when no GPU is present: the configs use the
gloo backend on CPUs, so the multi-process path is checked on a CPU-only runner too.
"""

import os
import shutil
import sys
import tempfile
import unittest

import torch
from parameterized import parameterized
from utils import export_config_and_run_mgpu_cmd

BUNDLE_ROOT = "models/lumbar_muscle_dixon_mri_segmentation"
TEST_CASE_1 = [  # multi-process train
    {
        "bundle_root": BUNDLE_ROOT,
        "epochs": 1,
        "val_interval": 1,
        "patch_size": [32, 32, 16],
        "num_workers": 0,
        "working_spacing": [8.0, 8.0, 12.0],
        "train#dataset#cache_rate": 0.0,
        "validate#dataset#cache_rate": 0.0,
    }
]


class TestLumbarMuscleDixonSegMGPU(unittest.TestCase):
    def setUp(self):
        self.work_dir = tempfile.mkdtemp()
        self.dataset_dir = os.path.join(self.work_dir, "data")
        sys.path.insert(0, os.path.abspath(BUNDLE_ROOT))
        from scripts.phantom import generate_cohort

        generate_cohort(
            self.dataset_dir, n=5, seed=3, geometry="tiny", variety=False, n_validation=1, n_testing=1, progress=False
        )

    def tearDown(self):
        shutil.rmtree(self.work_dir)

    @parameterized.expand([TEST_CASE_1])
    def test_train_mgpu_config(self, override):
        override = dict(
            override,
            dataset_dir=self.dataset_dir,
            output_dir=os.path.join(self.work_dir, "eval"),
            ckpt_dir=os.path.join(self.work_dir, "models"),
        )
        train_file = os.path.join(BUNDLE_ROOT, "configs/train.json")
        mgpu_train_file = os.path.join(BUNDLE_ROOT, "configs/multi_gpu_train.json")
        export_config_and_run_mgpu_cmd(
            config_file=[train_file, mgpu_train_file],
            logging_file=os.path.join(BUNDLE_ROOT, "configs/logging.conf"),
            meta_file=os.path.join(BUNDLE_ROOT, "configs/metadata.json"),
            override_dict=override,
            output_path=os.path.join(self.work_dir, "train_override.json"),
            ngpu=torch.cuda.device_count() or 2,
        )
        self.assertTrue(os.path.isfile(os.path.join(self.work_dir, "models", "model.pt")))


if __name__ == "__main__":
    unittest.main()
