"""Cohort runs of inference.json: resume after a kill, skip finished subjects, and torchrun with 2 processes
(gloo, CPU) giving the same cohort table as one process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scripts.phantom import generate_cohort
from scripts.pipeline.cpu_precision import resolve_cpu_precision

from tests.conftest import BUNDLE_ROOT

# these tests check the cohort plumbing, not accuracy: one pass (no flip ensembling, no batch-norm adaptation), no
# report.
# The model's own 2x2x4 mm grid, not a coarser one: the comparisons below need measured rows, and how much of a
# tiny phantom a model still finds on a grid it was never trained for changes with every retraining. The default
# 128x128x64 window, not a smaller one: on this grid a 64x64x32 window costs three times the time (80 windows
# instead of 8 on a tiny phantom, each with its own overlap and start-up).
FAST = [
    "--write_report",
    "false",
    "--flip_ensemble",
    "false",
    "--adapt_batch_norm",
    "false",
]
# one thread everywhere so that one and two processes compute bit-identical convolutions
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _cmd(dataset: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        "configs/inference.json",
        "--dataset_dir",
        str(dataset),
        "--output_dir",
        str(out),
        *FAST,
        *extra,
    ]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=BUNDLE_ROOT, capture_output=True, text=True, timeout=900, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def _table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "cohort_ff_table.csv", dtype={"subject": str})


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort_run") / "data"
    generate_cohort(out, n=4, seed=31, geometry="tiny", variety=False, n_validation=0, n_testing=4, progress=False)
    return out


@pytest.fixture(scope="module")
def one_process(cohort, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "eval"
    _run(_cmd(cohort, out))
    return out


def test_every_subject_is_finished_and_marked(cohort, one_process):
    table = _table(one_process)
    assert sorted(table.subject.unique()) == [f"sub-{i:04d}" for i in range(1, 5)]
    for sid in table.subject.unique():
        assert (one_process / sid / f"{sid}_done.json").is_file()
        assert (one_process / sid / f"{sid}_seg.nii.gz").is_file()


def test_a_second_run_skips_finished_subjects_and_changes_nothing(cohort, one_process):
    before = {p: p.stat().st_mtime_ns for p in one_process.rglob("*") if p.is_file()}
    res = _run(_cmd(cohort, one_process))
    assert "4 of 4 subjects already finished" in res.stdout + res.stderr
    after = {p: p.stat().st_mtime_ns for p in one_process.rglob("*") if p.is_file()}
    assert after == before


def _finished_while_running(out: Path) -> set[str]:
    """Subjects with a done marker, looked up while the run writes: it renames and removes its staging folders, so a
    folder listed a moment ago may be gone when the lookup enters it (pathlib's glob then raises)."""
    try:
        return {p.parent.name for p in out.glob("*/*_done.json")}
    except FileNotFoundError:
        return set()


def test_a_killed_run_resumes_and_gives_the_same_table(cohort, one_process, tmp_path):
    out = tmp_path / "eval"
    proc = subprocess.Popen(
        _cmd(cohort, out),
        cwd=BUNDLE_ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 600
    while not _finished_while_running(out) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name for p in out.glob("*/*_done.json")}
    assert 1 <= len(finished) < 4, "the run should have been killed part-way"
    kept = {p: p.stat().st_mtime_ns for sid in finished for p in (out / sid).iterdir()}
    res = _run(_cmd(cohort, out))
    assert f"{len(finished)} of 4 subjects already finished" in res.stdout + res.stderr
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished subjects untouched
    pd.testing.assert_frame_equal(_table(out), _table(one_process))


def _files(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def _refused(cohort: Path, out: Path, *extra: str) -> str:
    """Run the cohort command again with ``extra`` settings; it must refuse, skip nothing, and say why."""
    res = subprocess.run(
        _cmd(cohort, out, *extra), cwd=BUNDLE_ROOT, capture_output=True, text=True, timeout=900, env=ENV
    )
    assert res.returncode != 0
    assert "already finished" not in res.stdout + res.stderr
    return res.stdout + res.stderr


def _parser(cohort: Path, out: Path, **updates: Any):
    """inference.json parsed in this process for ``cohort`` -> ``out`` with ``updates``."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE_ROOT / "configs" / "inference.json"))
    parser.update({"bundle_root": str(BUNDLE_ROOT), "dataset_dir": str(cohort), "output_dir": str(out), **updates})
    return parser


def test_changed_settings_are_not_mistaken_for_finished_work(cohort, one_process):
    # a different erosion is a different run: nothing is skipped, and the earlier results are not overwritten
    before = _files(one_process)
    assert "holds results of a different run (differs in: settings)" in _refused(
        cohort, one_process, "--erosion_mm", "3.0"
    )
    assert _files(one_process) == before


def test_a_conflict_is_refused_before_any_segmentation(cohort, one_process):
    """The cohort's subject list is checked against the output folder first: a refused run has segmented nothing
    (the pending-subject step raises, so no subject reaches the network)."""
    from scripts.pipeline.run_record import RunConflictError

    parser = _parser(cohort, one_process, erosion_mm=3.0)
    data = parser.get_parsed_content("data")  # a lazy list: made in `run`, so check_properties needs no data
    with pytest.raises(RunConflictError, match="differs in: settings"):
        data.load()
    parser.update({"erosion_mm": 3.0, "overwrite": True})
    parser.parse()
    assert len(parser.get_parsed_content("data").load()) == 4  # --overwrite true: every subject is redone


def test_changed_segmentation_settings_are_not_mistaken_for_finished_work(cohort, one_process):
    # the label map itself would differ: reusing the earlier results would report numbers of another segmentation
    assert "holds results of a different run" in _refused(cohort, one_process, "--sw_padding_mode", "constant")


@pytest.mark.parametrize(
    "override",
    [
        {"flip_ensemble": "true"},
        {"roi_size": [64, 64, 32]},
        {"adapt_batch_norm": "true"},
        {"adapt_statistics": "windows"},
        # the precision the default ("auto") did not resolve to on this machine
        {"cpu_precision": "float32" if resolve_cpu_precision("auto") == "bfloat16" else "bfloat16"},
    ],
)
def test_every_segmentation_setting_is_part_of_the_run_identity(cohort, one_process, override):
    """The other settings that change the label map, checked in this process (the command line above shows the
    refusal end to end; the check is the same step, reached without starting a bundle for each setting)."""
    from scripts.pipeline.run_record import RunConflictError

    fast = {"write_report": "false", "flip_ensemble": "false", "adapt_batch_norm": "false"}
    parser = _parser(cohort, one_process, **fast)
    assert len(parser.get_parsed_content("data").load()) == 0  # the run as it was made: every subject finished
    parser.update(override)
    parser.parse()
    with pytest.raises(RunConflictError, match="holds results of a different run"):
        parser.get_parsed_content("data").load()


def test_the_same_setting_spelled_differently_is_the_same_run(cohort, one_process):
    res = _run(_cmd(cohort, one_process, "--flip_ensemble", "False"))
    assert "4 of 4 subjects already finished" in res.stdout + res.stderr


def test_the_precision_auto_chose_named_explicitly_is_the_same_run(cohort, one_process):
    # the run record holds the precision that ran, not the word "auto"
    res = _run(_cmd(cohort, one_process, "--cpu_precision", resolve_cpu_precision("auto")))
    assert "4 of 4 subjects already finished" in res.stdout + res.stderr


def test_requantify_reproduces_the_run_and_applies_other_settings(one_process, tmp_path):
    from scripts.pipeline.requantify import run

    same = tmp_path / "same.csv"
    assert "4 subjects" in run(str(one_process), str(same))  # the bundle's defaults
    new, old = pd.read_csv(same), _table(one_process)
    cols = ["ff_mean_pct", "ff_median_pct", "ff_core_mean_pct", "volume_ml", "n_voxels", "n_trimmed_voxels"]
    assert (old.status == "ok").sum() >= 8, old.status.value_counts()
    # CSV round trip: an all-zero column reads back as integers on one side; values must agree, not dtypes
    pd.testing.assert_frame_equal(new[cols], old[cols], check_dtype=False)
    plain = tmp_path / "plain.csv"
    run(str(one_process), str(plain), border_trim_ff=None)
    p = pd.read_csv(plain)
    assert (p.n_trimmed_voxels == 0).all() and (p.border_trim == "none").all()
    assert (p.n_voxels >= old.n_voxels).all()
    with pytest.raises(FileExistsError):
        run(str(one_process), str(plain))  # other content: refused


def test_one_bad_subject_fails_alone_with_a_summary_at_the_end(cohort, one_process, tmp_path):
    # failed check 5: one bad subject stopped the cohort run; later subjects were never processed
    import shutil

    data = tmp_path / "data"
    shutil.copytree(cohort, data)
    victim = sorted((data / "sub-0002").glob("*_fat.nii.gz"))[0]
    victim.write_bytes(b"\x1f\x8b not really gzip")
    out = tmp_path / "eval"
    res = subprocess.run(_cmd(data, out), cwd=BUNDLE_ROOT, capture_output=True, text=True, timeout=900, env=ENV)
    assert res.returncode != 0
    tail = "\n".join(res.stderr.strip().splitlines()[-4:])
    assert "1 of 4 subject(s) failed" in tail and "sub-0002" in tail, tail
    failures = pd.read_csv(out / "cohort_failures.csv")
    assert failures.subject.tolist() == ["sub-0002"] and victim.name in failures.file[0]
    assert sorted(_table(out).subject.unique()) == ["sub-0001", "sub-0003", "sub-0004"]
    ok = _table(out)
    pd.testing.assert_frame_equal(
        ok.reset_index(drop=True), _table(one_process)[_table(one_process).subject != "sub-0002"].reset_index(drop=True)
    )
    # nothing of the run's machinery is left in the folder
    assert not list(out.rglob("*.lock")) and not (out / ".staging").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_machines_with_one_rendezvous_give_the_one_process_table(cohort, one_process, tmp_path):
    # issue #24: several machines run the same command and meet at a rendezvous (c10d); here two "machines" are two
    # torchrun launchers on 127.0.0.1, one process each, gloo. They share the output folder as machines would share
    # a network file system, and split the subjects between them without gaps or duplicates.
    out = tmp_path / "eval"
    port = _free_port()
    procs = []
    for rank in (0, 1):
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc_per_node=1",
            f"--node_rank={rank}",
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{port}",
            "--rdzv_id=cohort_test",
            f"--rdzv_conf=is_host={1 if rank == 0 else 0}",
            "-m",
            "monai.bundle",
            "run",
            "--config_file",
            "['configs/inference.json','configs/multi_gpu_inference.json']",
            *_cmd(cohort, out)[6:],
        ]
        procs.append(
            subprocess.Popen(cmd, cwd=BUNDLE_ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    logs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    pd.testing.assert_frame_equal(_table(out), _table(one_process))
    assert len(list(out.glob("*/*_done.json"))) == 4
