"""Resumable steps: an interrupted step continues from its saved state or is moved aside and redone; SIGTERM ends
the running step's child process too."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.studies.bundle_runs import training_can_resume
from scripts.studies.resumable_steps import run_step


def test_sigterm_stops_the_running_step_child_too(tmp_path):
    """A study killed with SIGTERM must not leave its training (a child process) running as an orphan."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    # the child writes its own pid, then sleeps; the parent waits on it with subprocess.run, as _bundle_run does
    child_code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    code = (
        "import subprocess, sys\n"
        "from scripts.studies.resumable_steps import exit_on_sigterm\n"
        "exit_on_sigterm()\n"
        f"subprocess.run([sys.executable, '-c', {child_code!r}])\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2])
    deadline = time.time() + 60
    while not (pid_file.is_file() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.time() + 10
    alive = True
    stat = Path(f"/proc/{child}/stat")
    while alive and time.time() < deadline:
        try:
            os.kill(child, 0)
            # a killed child whose new parent does not reap it stays a zombie ("Z"): dead all the same
            alive = not (stat.is_file() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")
            time.sleep(0.1)
        except (ProcessLookupError, FileNotFoundError):
            alive = False
    assert not alive, f"child {child} still running after its parent was terminated"


def test_an_interrupted_training_step_continues_in_its_folder(tmp_path):
    folder = tmp_path / "unet_train"
    state = folder / "models" / "train_state"
    state.mkdir(parents=True)
    assert not training_can_resume(folder)  # no saved state yet: a crash before the first checkpoint
    (state / "checkpoint_epoch=4.pt").write_bytes(b"state")
    (folder / "train.log").write_text("epochs 1-4\n")
    assert training_can_resume(folder)
    seen = []

    def work(f: Path) -> dict:
        seen.append(sorted(p.name for p in f.rglob("*")))
        return {"epochs": 6}

    record = run_step(folder, work, can_resume=training_can_resume)
    assert record["resumed"] is True and record["epochs"] == 6
    assert "checkpoint_epoch=4.pt" in seen[0] and "train.log" in seen[0]  # the work saw the interrupted run's state
    assert not list(tmp_path.glob("unet_train.incomplete-*"))
    assert json.loads((folder / ".done.json").read_text())["resumed"] is True
    # a finished step is skipped, with or without a resumable state
    assert run_step(folder, lambda f: {"epochs": 0}, can_resume=training_can_resume)["epochs"] == 6


def test_an_interrupted_step_without_saved_state_is_redone_from_scratch(tmp_path):
    folder = tmp_path / "unet_train"
    (folder / "models").mkdir(parents=True)
    (folder / "train.log").write_text("crashed at epoch 1\n")
    record = run_step(folder, lambda f: {"files": sorted(p.name for p in f.rglob("*"))}, can_resume=training_can_resume)
    assert record["files"] == [] and "resumed" not in record
    assert (tmp_path / "unet_train.incomplete-1" / "train.log").read_text() == "crashed at epoch 1\n"
