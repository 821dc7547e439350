"""Every shell command that README.md and docs/README.md show, run as a subprocess the way a user types it.

The commands run in the order the documents give them, in one copy of the bundle (later commands use what earlier
ones made, as they do for a user). The README's first quick-start command runs verbatim, at the reference geometry.
The model card's commands run on tiny phantoms: each is the documented string with a few stated replacements (fewer
subjects, one epoch) and size overrides appended; a replacement that no longer matches the documented text fails.

A documented command this module does not know fails ``test_every_documented_command_is_run``: a command shown to
users can never silently break.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tests.conftest import BUNDLE_ROOT

DOCUMENTS = ("README.md", "docs/README.md")
# what a user's clone holds that the commands read (no tests, no outputs)
BUNDLE_CONTENT = ("configs", "scripts", "models", "resources", "LICENSE", "requirements.txt", "requirements-dev.txt")
TINY_INFERENCE = "--working_spacing [8.0,8.0,8.0] --roi_size [64,64,32]"
TINY_TRAINING = "--val_interval 1 --patch_size [32,32,16] --working_spacing [8.0,8.0,12.0] --num_workers 0"
TINY_PHANTOMS = "--geometry tiny --variety false --progress false"


@dataclasses.dataclass(frozen=True)
class Tiny:
    """How a documented command is made small: exact text replacements, then arguments appended."""

    replace: tuple[tuple[str, str], ...] = ()
    append: str = ""

    def apply(self, command: str) -> str:
        for old, new in self.replace:
            assert old in command, f"documented command changed: {old!r} no longer in {command!r}"
            command = command.replace(old, new)
        return f"{command} {self.append}".strip()


QUICK_START_RUN = (
    "python3.11 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python -m scripts.phantom "
    "sample --out_dir sample_data && .venv/bin/python -m monai.bundle run --config_file configs/inference.json"
)
QUICK_START_TEST = (
    "python3.11 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt && .venv/bin/python -m pytest -q tests"
)

# documented command -> how it runs here, in document order (README.md first, then docs/README.md)
RUNS: dict[str, Tiny | None] = {
    QUICK_START_RUN: Tiny(),
    QUICK_START_TEST: None,  # the suite itself: .ci/run runs exactly this (test_quick_start_test_command_is_ci)
    ".venv/bin/python -m scripts.phantom cohort --out_dir phantom30 --n 30 --seed 1": Tiny(
        replace=(("--n 30", "--n 2"),), append="--geometry tiny --progress false"
    ),
    ".venv/bin/python -m scripts.phantom subject --out_dir one --seed 7 --geometry low --orientation LPS "
    "--swap regional": Tiny(),
    # on the tiny phantom30 cohort above (its one training subject) instead of the reference-geometry sample
    ".venv/bin/python -m monai.bundle run --config_file configs/inference.json --output_dir eval_later "
    "--write_report later": Tiny(
        replace=(("--output_dir", "--dataset_dir phantom30 --datalist_key training --output_dir"),),
        append=TINY_INFERENCE,
    ),
    ".venv/bin/python -m scripts.reporting.render_reports --output_dir eval_later": Tiny(),
    "pip install -r requirements.txt": Tiny(),
    "python -m scripts.phantom sample --out_dir sample_data": Tiny(),
    "python -m monai.bundle run --config_file configs/inference.json": Tiny(),
    "python -m monai.bundle run inference --config_file configs/inference.json": Tiny(),
    "python -m scripts.phantom cohort --out_dir phantom_test --n 20 --seed 2 --n_validation 0 --n_testing 20": Tiny(
        replace=(("--n 20", "--n 4"), ("--n_testing 20", "--n_testing 4")), append=TINY_PHANTOMS
    ),
    "python -m monai.bundle run --config_file configs/inference.json --dataset_dir phantom_test --output_dir "
    "eval_test": Tiny(append=TINY_INFERENCE),
    "python -m scripts.evaluation.evaluate_phantom --dataset_dir phantom_test --pred_dir eval_test": Tiny(),
    "python -m monai.bundle run --config_file configs/inference.json --dataset_dir phantom_test --output_dir "
    "eval_test_noadapt --adapt_batch_norm false": Tiny(append=TINY_INFERENCE),
    "torchrun --standalone --nnodes=1 --nproc_per_node=2 -m monai.bundle run --config_file "
    "\"['configs/inference.json','configs/multi_gpu_inference.json']\" --dataset_dir phantom_test --output_dir "
    "eval_test_ddp": Tiny(append=TINY_INFERENCE),
    # at the tiny test geometry (8 mm voxels) every L/R mean fails the quality verdict, which the command then
    # refuses to build from (tests/normative/test_cohort_study.py); the option builds from them, as a user may
    "python -m scripts.normative.cohort_study build_reference --cohort_table eval_test/cohort_ff_table.csv "
    "--participants phantom_test/participants.tsv --output my_reference.json": Tiny(append="--include_failed_qc true"),
    "python -m monai.bundle run --config_file configs/inference.json --dataset_dir phantom_test --output_dir "
    "eval_test_myref --reference_file my_reference.json": Tiny(append=TINY_INFERENCE),
    "python -m scripts.normative.cohort_study compare_groups --cohort_table eval_test/cohort_ff_table.csv "
    "--participants phantom_test/participants.tsv --out_dir eval_test/groups": Tiny(),
    "python -m scripts.phantom cohort --out_dir phantom_train --n 32 --seed 1 --n_validation 6": Tiny(
        replace=(("--n 32", "--n 4"), ("--n_validation 6", "--n_validation 1")), append=TINY_PHANTOMS
    ),
    "python -m monai.bundle run --config_file configs/train.json --dataset_dir phantom_train --ckpt_dir "
    "my_training/models": Tiny(append="--epochs 1 " + TINY_TRAINING),
    "python -m monai.bundle run --config_file configs/train.json --dataset_dir phantom_train --pretrained_ckpt "
    "models/model.pt --epochs 20 --learning_rate 0.0003 --ckpt_dir my_model/models": Tiny(
        replace=(("--epochs 20", "--epochs 1"),), append=TINY_TRAINING
    ),
    "python -m monai.bundle run --config_file configs/inference.json --ckpt_path my_model/models/model.pt "
    "--dataset_dir phantom_test --output_dir eval_my_model": Tiny(append=TINY_INFERENCE),
    "python -m monai.bundle run --config_file \"['configs/train.json','configs/evaluate.json']\" --dataset_dir "
    "phantom_train": Tiny(append=TINY_TRAINING),
    "torchrun --standalone --nnodes=1 --nproc_per_node=2 -m monai.bundle run --config_file "
    "\"['configs/train.json','configs/multi_gpu_train.json']\" --dataset_dir phantom_train --ckpt_dir "
    "my_training_ddp/models": Tiny(append="--epochs 1 " + TINY_TRAINING),
    "python -m scripts.phantom cohort --out_dir phantom_train_complete --n 32 --seed 1 --n_validation 6 --anatomy "
    "complete": Tiny(replace=(("--n 32", "--n 3"), ("--n_validation 6", "--n_validation 1")), append=TINY_PHANTOMS),
    "python -m monai.bundle run --config_file \"['configs/train.json','configs/spine_train.json']\" --dataset_dir "
    "phantom_train_complete": Tiny(append="--epochs 1 " + TINY_TRAINING),
    "python -m monai.bundle run --config_file configs/inference.json --dataset_dir phantom_test --output_dir "
    "eval_test_spine --spine_ckpt_path spine_training/models/model.pt": Tiny(append=TINY_INFERENCE),
    "python -m monai.bundle ckpt_export network_def --filepath my_model/models/model.ts --ckpt_file "
    "my_model/models/model.pt --meta_file configs/metadata.json --config_file configs/inference.json": Tiny(),
    "python -m scripts.phantom cohort --out_dir phantom_septa --n 10 --seed 5 --texture septa": Tiny(
        replace=(("--n 10", "--n 1"),), append=TINY_PHANTOMS
    ),
    "python -m scripts.phantom subject --out_dir one --seed 7 --geometry low --orientation LPS --swap regional": Tiny(),
}


def documented_commands() -> list[str]:
    """The commands of every ```bash block of DOCUMENTS, in order, without comments and blank lines."""
    commands = []
    for doc in DOCUMENTS:
        text = (BUNDLE_ROOT / doc).read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
            commands += [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]
    return commands


def test_every_documented_command_is_run():
    documented = documented_commands()
    unknown = [c for c in documented if c not in RUNS]
    assert not unknown, f"documented but not run by this module (add them to RUNS): {unknown}"
    stale = [c for c in RUNS if c not in documented]
    assert not stale, f"run by this module but no longer documented (remove them from RUNS): {stale}"


def test_quick_start_test_command_is_ci():
    # .ci/run is that command on a clean clone (fresh .venv, requirements-dev.txt, the suite)
    ci = (BUNDLE_ROOT / ".ci" / "run").read_text()
    assert "-m venv .venv" in ci and "pip install" in ci and "-r requirements-dev.txt" in ci
    assert re.search(r"^\.venv/bin/python -m pytest -q tests$", ci, flags=re.M)


@pytest.fixture(scope="module")
def user_clone(tmp_path_factory) -> Path:
    """A copy of the bundle as a user's clone holds it, with a .venv that sees this environment's packages.

    ``python3.11 -m venv .venv`` in the quick start then finds a virtual environment whose packages are installed
    (through a .pth file naming this environment's site-packages), so ``pip install -r requirements.txt`` has nothing
    to fetch; installing them from nothing is what .ci/run does first on its clean clone.
    """
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs to run inside a virtual environment (its packages are lent to the clone's .venv)")
    clone = tmp_path_factory.mktemp("clone") / "bundle"
    clone.mkdir()
    for item in BUNDLE_CONTENT:
        src = BUNDLE_ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, clone / item)
    subprocess.run(["python3.11", "-m", "venv", str(clone / ".venv")], check=True, timeout=300)
    venv_site = next((clone / ".venv" / "lib").glob("python3*/site-packages"))
    (venv_site / "_lent_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return clone


def _run(command: str, cwd: Path, threads: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    # the clone's .venv first (python, pip); then this environment's bin, whose entry points (torchrun) a .venv
    # that installed torch itself would hold
    env["PATH"] = os.pathsep.join([str(cwd / ".venv" / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)  # a user's shell has none: the commands must find `scripts` by themselves
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("command", [c for c in RUNS if RUNS[c] is not None])
def test_documented_command_runs(command, user_clone):
    # one thread for the tiny runs, as torchrun gives each of its processes: one and two processes then compute
    # bit-identical convolutions and their tables can be compared exactly
    res = _run(RUNS[command].apply(command), user_clone, threads=None if command == QUICK_START_RUN else 1)
    assert res.returncode == 0, f"{command}\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    _check_outputs(command, user_clone)


def _check_outputs(command: str, clone: Path) -> None:
    """What each command must have left behind (beyond exiting 0)."""
    if command == QUICK_START_RUN:
        table = pd.read_csv(clone / "eval" / "cohort_ff_table.csv")
        assert table.subject.nunique() == 3
        for subject in table.subject.unique():
            seg = nib.load(str(clone / "eval" / subject / f"{subject}_seg.nii.gz"))
            assert seg.shape == (400, 320, 145)
    elif "--output_dir eval_test " in command + " " and "monai.bundle run" in command:
        assert pd.read_csv(clone / "eval_test" / "cohort_ff_table.csv").subject.nunique() == 4
    elif "--write_report later" in command:
        done = list((clone / "eval_later").glob("*/*_done.json"))
        assert done and all((d.parent / f"{d.parent.name}_report_inputs.npz").is_file() for d in done)
        assert not list((clone / "eval_later").glob("*/*_report.html"))
    elif "scripts.reporting.render_reports" in command:
        for done in (clone / "eval_later").glob("*/*_done.json"):
            for suffix in ("_report.html", "_qc_axial.png", "_ff_chart.png"):
                assert (done.parent / f"{done.parent.name}{suffix}").is_file(), suffix
    elif "--output_dir eval_test_ddp" in command:
        # two processes split the subjects and give the table one process gives
        pd.testing.assert_frame_equal(_cohort_table(clone / "eval_test_ddp"), _cohort_table(clone / "eval_test"))
        assert len(list((clone / "eval_test_ddp").glob("*/*_done.json"))) == 4
    elif "--ckpt_dir my_training_ddp/models" in command:
        import torch

        state = torch.load(clone / "my_training_ddp" / "models" / "model.pt", weights_only=True)
        # the saver unwraps DistributedDataParallel: the weights load into the plain network
        assert state and not any(k.startswith("module.") for k in state)
        assert not (clone / "my_training_ddp" / "models" / "train_state").exists()
    elif "--spine_ckpt_path" in command:
        # the spine network trained by the command before ran for every subject and left its record
        tables = list((clone / "eval_test_spine").glob("*/*_ff_table.json"))
        assert len(tables) == 4
        for path in tables:
            assert json.loads(path.read_text())["meta"]["levels"]["naming"]["source"] == "spine network"
    elif "build_reference" in command:
        assert json.loads((clone / "my_reference.json").read_text())
    elif "--ckpt_dir my_training/models" in command:
        assert (clone / "my_training" / "models" / "model.pt").is_file()
    elif "ckpt_export" in command:
        assert (clone / "my_model" / "models" / "model.ts").is_file()


def _cohort_table(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out / "cohort_ff_table.csv")
    return table.sort_values(list(table.columns[:5])).reset_index(drop=True)


def test_run_inference_gives_the_outputs_of_run_here_and_from_another_folder(tmp_path):
    """The mission's command (`run inference`) and `run` write the same label maps and tables."""
    data = tmp_path / "data"
    from scripts.phantom import generate_cohort

    generate_cohort(data, n=2, seed=5, geometry="tiny", variety=False, n_validation=0, n_testing=2, progress=False)
    outs = []
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # `run` and `run inference` from the bundle folder as typed; `run inference` from another folder, --bundle_root
    runs = (
        ("", BUNDLE_ROOT, "configs/inference.json", ""),
        ("inference", BUNDLE_ROOT, "configs/inference.json", ""),
        ("inference", elsewhere, BUNDLE_ROOT / "configs" / "inference.json", f"--bundle_root {BUNDLE_ROOT} "),
    )
    for i, (run_id, cwd, config, where) in enumerate(runs):
        out = tmp_path / f"out_{i}"
        cmd = (
            f"{sys.executable} -m monai.bundle run {run_id} --config_file {config} {where}--dataset_dir {data} "
            f"--output_dir {out} {TINY_INFERENCE}"
        )
        res = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        outs.append(out)
    a, b, c = outs
    subjects = sorted(p.name for p in a.iterdir() if p.is_dir())
    for other in (b, c):
        assert subjects == sorted(p.name for p in other.iterdir() if p.is_dir()) and len(subjects) == 2
        for s in subjects:
            np.testing.assert_array_equal(
                nib.load(str(a / s / f"{s}_seg.nii.gz")).get_fdata(),
                nib.load(str(other / s / f"{s}_seg.nii.gz")).get_fdata(),
            )
            pd.testing.assert_frame_equal(
                pd.read_csv(a / s / f"{s}_ff_table.csv"), pd.read_csv(other / s / f"{s}_ff_table.csv")
            )
