"""The bundle served by MONAI Label 0.8.5 (``monaibundle`` sample app): a real server process on 127.0.0.1.

Needs the MONAI Label environment made by ``.ci/install_monailabel.sh`` (``.venv-monailabel``, or the interpreter
in ``MONAILABEL_PYTHON``). Without it the tests skip, unless ``REQUIRE_INTEGRATION=1`` (CI), where they fail.
Phantoms use a 4 x 4 x 8 mm grid: the cheapest geometry on which the shipped model still reaches Dice > 0.9 for
every muscle (it resamples to 2 x 2 x 4 mm anyway), so generating, uploading and writing cost little.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from scripts.integrations.monailabel_app import (
    BUNDLE_PARTS,
    DEFAULT_NAME,
    MONAILABEL_TRAIN_OPTIONS,
    add_torchvision_guard,
    add_uncertainty_strategy,
    add_vertebral_label_names,
    copy_bundle,
    server_command,
    set_train_options,
    setup,
)
from scripts.integrations.scan_typicality import ScanDescriptor, pool_density
from scripts.labels import VERTEBRAL_LABELS
from scripts.phantom import Acquisition, generate_subject

from tests.conftest import BUNDLE_ROOT
from tests.lumbar_cut import l2_l5_cut

MUSCLES = {
    "psoas_left": 1,
    "psoas_right": 2,
    "iliacus_left": 3,
    "iliacus_right": 4,
    "quadratus_lumborum_left": 5,
    "quadratus_lumborum_right": 6,
    "erector_spinae_multifidus_left": 7,
    "erector_spinae_multifidus_right": 8,
}
#: with the shipped spine network the label maps also hold the vertebral bodies and the sacrum, named in /info
SPINE = (BUNDLE_ROOT / "models" / "spine_model.pt").is_file()
LABELS = {**MUSCLES, **({v.lower(): k for k, v in VERTEBRAL_LABELS.items()} if SPINE else {})}
GEOMETRY = Acquisition.from_spacing((4.0, 4.0, 8.0))
TRAIN_SEEDS = (301, 302, 303, 304)  # labelled studies (3 train + 1 validation with val_split 0.25)
INFER_SEED = 310  # an unlabelled study, as a new case in active learning
STARTUP_TIMEOUT_S = 120
TRAIN_TIMEOUT_S = 240
PYTHON = Path(os.environ.get("MONAILABEL_PYTHON", BUNDLE_ROOT / ".venv-monailabel" / "bin" / "python"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _monailabel_python() -> Path:
    """The MONAI Label interpreter, or skip (fail under ``REQUIRE_INTEGRATION=1``) when it cannot import it."""
    ok = (
        PYTHON.is_file()
        and subprocess.run([str(PYTHON), "-c", "import monailabel"], capture_output=True).returncode == 0
    )
    if not ok:
        why = (
            f"no MONAI Label environment at {PYTHON} (build it with .ci/install_monailabel.sh, or point "
            "MONAILABEL_PYTHON at one)"
        )
        if os.environ.get("REQUIRE_INTEGRATION") == "1":
            pytest.fail(f"REQUIRE_INTEGRATION=1 but {why}")
        pytest.skip(why)
    return PYTHON


class Server:
    """A running ``monailabel start_server`` and the folders it serves."""

    def __init__(self, url: str, app: Path, studies: Path, proc: subprocess.Popen, log: Path, startup_s: float):
        self.url, self.app, self.studies, self.proc, self.log, self.startup_s = url, app, studies, proc, log, startup_s

    @property
    def model_file(self) -> Path:
        """The app's copy of the weights, the one MONAI Label trains."""
        return self.app / "model" / DEFAULT_NAME / "models" / "model.pt"

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 120) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"} if data else {}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {path}: HTTP {e.code} {e.read()[:500]!r}\n{self.log_tail()}") from e

    def log_tail(self, n: int = 60) -> str:
        return "server log (end):\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def _write_studies(studies: Path) -> dict[int, Any]:
    """Phantom in-phase images as studies; the training ones get their truth as the final label."""
    (studies / "labels" / "final").mkdir(parents=True)
    subjects = {}
    for seed in (*TRAIN_SEEDS, INFER_SEED):
        s = generate_subject(seed=seed, acquisition=GEOMETRY)
        name = f"{s.subject_id}.nii.gz"  # the study id is the file name without extension
        nib.save(nib.Nifti1Image(s.images["inphase"], s.affine), studies / name)
        if seed in TRAIN_SEEDS:
            nib.save(nib.Nifti1Image(s.images["label"], s.affine), studies / "labels" / "final" / name)
        subjects[seed] = s
    return subjects


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> tuple[Path, dict[int, Any]]:
    studies = tmp_path_factory.mktemp("monailabel") / "studies"
    return studies, _write_studies(studies)


@pytest.fixture(scope="module")
def shipped_model_hash() -> str:
    return _sha256(BUNDLE_ROOT / "models" / "model.pt")


@pytest.fixture(scope="module")
def monailabel_python() -> Path:
    return _monailabel_python()


@contextlib.contextmanager
def _serving(python: Path, work: Path, studies: Path, **setup_kwargs: Any) -> Iterator[Server]:
    """Set up an app in ``work/app`` serving the bundle on ``studies``; run the server until the block ends."""
    setup(str(work / "app"), bundle_dir=str(BUNDLE_ROOT), python=str(python), **setup_kwargs)
    port = _free_port()
    log = work / "server.log"
    cmd = server_command(work / "app", studies, python=python, port=port)
    t0 = time.monotonic()
    with open(log, "wb") as fh:
        # own process group: the finalizer also stops the training subprocess the server starts
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=work, start_new_session=True)
    srv = Server(f"http://127.0.0.1:{port}", work / "app", studies, proc, log, 0.0)
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"MONAI Label exited with {proc.returncode} during startup\n{srv.log_tail()}")
            if time.monotonic() - t0 > STARTUP_TIMEOUT_S:
                pytest.fail(f"MONAI Label not ready after {STARTUP_TIMEOUT_S} s\n{srv.log_tail()}")
            try:
                urllib.request.urlopen(srv.url + "/info/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.25)
        srv.startup_s = time.monotonic() - t0
        print(f"\nMONAI Label ready after {srv.startup_s:.1f} s")
        yield srv
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def server(monailabel_python, phantoms, shipped_model_hash):
    studies, _ = phantoms
    # short rounds (1 epoch here, a few in Slicer) must still validate, or the round saves no model.pt
    with _serving(monailabel_python, studies.parent, studies, train_options={"val_interval": 1}) as srv:
        yield srv
    # the shipped weights are never trained: MONAI Label works on the app's copy
    assert _sha256(BUNDLE_ROOT / "models" / "model.pt") == shipped_model_hash


def test_info_lists_the_eight_muscles_and_the_spine_labels(server):
    info = json.loads(server.request("GET", "/info/"))
    model = info["models"][DEFAULT_NAME]
    assert model["labels"] == LABELS
    assert model["type"] == "segmentation" and model["dimension"] == 3
    assert sorted(info["labels"]) == sorted(LABELS)
    assert DEFAULT_NAME in info["trainers"]
    stats = json.loads(server.request("GET", "/datastore/?output=stats"))
    assert stats["total"] == len(TRAIN_SEEDS) + 1 and stats["label_tags"] == {"final": len(TRAIN_SEEDS)}


def _infer_and_score(server: Server, truth: Any, out: Path) -> dict[str, float]:
    """POST /infer on the study of ``truth``; check the label map's grid and values; Dice per muscle."""
    t0 = time.monotonic()
    body = server.request("POST", f"/infer/{DEFAULT_NAME}?image={truth.subject_id}&output=image")
    print(f"\n/infer {time.monotonic() - t0:.1f} s")
    out.write_bytes(body)
    seg = nib.load(out)
    pred = np.asarray(seg.dataobj)
    assert pred.shape == truth.images["inphase"].shape
    np.testing.assert_allclose(seg.affine, truth.affine, atol=1e-4)
    assert set(np.unique(pred)) <= {0, *LABELS.values()}
    lab = truth.images["label"]
    dice = {
        name: float(2 * np.sum((pred == v) & (lab == v)) / (np.sum(pred == v) + np.sum(lab == v)))
        for name, v in MUSCLES.items()
    }
    print("Dice " + ", ".join(f"{k} {d:.3f}" for k, d in dice.items()))
    return dice


def test_infer_returns_label_map_on_input_grid(server, phantoms, tmp_path):
    _, subjects = phantoms
    dice = _infer_and_score(server, subjects[INFER_SEED], tmp_path / "seg.nii.gz")
    assert min(dice.values()) > 0.9, dice


def _multipart(server: Server, method: str, path: str, params: dict[str, Any], field: str, file: Path) -> bytes:
    """A multipart request (``params`` JSON and one file under ``field``), as the MONAI Label clients and Slicer send
    labels and images."""
    boundary = "lumbar-dixon-boundary"
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{json.dumps(params)}\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{file.name}"\r\n'.encode(),
            b"Content-Type: application/octet-stream\r\n\r\n" + file.read_bytes() + b"\r\n",
            f"--{boundary}--\r\n".encode(),
        ]
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    req = urllib.request.Request(f"{server.url}{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {path}: HTTP {e.code} {e.read()[:500]!r}\n{server.log_tail()}") from e


def _infer_upload(server: Server, path: Path, params: dict[str, Any]) -> np.ndarray:
    """POST /infer with an image file and the request's params; the returned label map."""
    out = path.with_name("result_" + path.name)
    out.write_bytes(_multipart(server, "POST", f"/infer/{DEFAULT_NAME}?output=image", params, "file", path))
    return np.asarray(nib.load(out).dataobj)


@pytest.mark.skipif(not SPINE, reason="the served copy has no spine network (models/spine_model.pt)")
def test_an_l2_l5_scan_gets_its_vertebral_bodies_named_from_the_requests_lowest_vertebra(server, tmp_path):
    """The common lumbar protocol shows no sacrum to count from: the client states the lowest body in view."""
    info = json.loads(server.request("GET", "/info/"))
    assert info["models"][DEFAULT_NAME]["config"]["lowest_vertebra"] == ""  # shown as an option, empty by default
    subj, truth = l2_l5_cut(11)
    path = tmp_path / "l2_l5.nii.gz"
    nib.save(nib.Nifti1Image(subj.images["inphase"], subj.affine), path)
    assert set(np.unique(_infer_upload(server, path, {}))) <= set(MUSCLES.values()) | {0}  # no anchor: none named
    pred = _infer_upload(server, path, {"lowest_vertebra": "L5"})
    bodies = {v: n for n, v in LABELS.items() if n.startswith("vertebral_body_")}
    named = sorted(set(np.unique(pred)) & set(bodies))
    assert {11, 12, 13} <= set(named) and 14 not in np.unique(pred), named  # L3-L5 at least; no sacrum
    # each named body's centre lies within the generator's level of that name (world z, mm)
    for value in named:
        k = np.argwhere(pred == value)[:, 2].mean()
        z = float(subj.affine[2, 2] * k + subj.affine[2, 3])
        level = bodies[value].rsplit("_", 1)[1].upper()
        assert truth[level][0] <= z < truth[level][1], (level, z, truth[level])


def test_train_round_rewrites_the_app_model(server, phantoms, tmp_path):
    before = _sha256(server.model_file)
    t0 = time.monotonic()
    server.request(
        "POST", f"/train/{DEFAULT_NAME}", {"max_epochs": 1, "val_split": 0.25, "device": "cpu", "multi_gpu": False}
    )
    while True:
        task = json.loads(server.request("GET", "/train/?all=false&check_if_running=false"))
        if task.get("status") in ("DONE", "ERROR"):
            break
        assert time.monotonic() - t0 < TRAIN_TIMEOUT_S, f"training not done after {TRAIN_TIMEOUT_S} s: {task}"
        time.sleep(1)
    print(f"\n/train (1 epoch, 3 + 1 studies) {time.monotonic() - t0:.1f} s")
    details = "\n".join(task.get("details", []))
    assert task["status"] == "DONE", details[-3000:]
    assert "Epoch: 1/1" in details, details[-3000:]
    # the served weights are validated first (validate_at_start), so the round's model replaces them only if better;
    # from the server's log, which keeps every line of the round (the task's details keep its last 20 only)
    text = server.log.read_text(errors="replace")
    full = text[text.rfind("COMMAND::") :]
    best = [float(v) for v in re.findall(r"Key metric: val_mean_dice best value: ([0-9.]+)", full)]
    assert best and full.index("Key metric: val_mean_dice") < full.index("Epoch: 1/1, Iter: 1/"), full[-3000:]
    assert "model_last.pt" in full  # the round's last weights are kept beside the best
    shipped = torch.load(BUNDLE_ROOT / "models" / "model.pt", map_location="cpu", weights_only=True)
    trained = torch.load(server.model_file, map_location="cpu", weights_only=True)
    assert {k: v.shape for k, v in trained.items()} == {k: v.shape for k, v in shipped.items()}
    changed = any(not torch.equal(trained[k], shipped[k]) for k in shipped)
    assert changed == (best[-1] > best[0]), (best, changed, _sha256(server.model_file) != before)
    # the server reloads the new weights, and a round must not wreck the model (it replaces the served one)
    _, subjects = phantoms
    dice = _infer_and_score(server, subjects[INFER_SEED], tmp_path / "seg_after_round.nii.gz")
    assert min(dice.values()) > 0.9, dice


# --- the uncertainty next-sample strategy, on a server of its own ------------------------------------------------

EASY_SEEDS = (320, 321)  # phantoms the shipped model segments well
HARD_ID = "noise"  # uniform noise: nothing the network was trained on
#: the phantom's central 256 x 256 x 256 mm (64 x 64 x 32 voxels): one sliding window on the working grid, so scoring
#: an image costs four window passes (about 10 s on two busy CPU cores), and the lumbar muscles are mostly inside
CROP = (64, 64, 32)
#: the noise covers half the slices of the crops: an atypical acquisition (a cut field) as well as an unknown content,
#: so that ``uncertainty`` asks for it first and ``uncertainty_typical`` does not
NOISE_SHAPE = (64, 64, 16)


def _crop(image: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The central ``CROP`` of ``image``, with the affine of the cropped grid."""
    start = [(n - c) // 2 for n, c in zip(image.shape, CROP)]
    moved = affine.copy()
    moved[:3, 3] += affine[:3, :3] @ np.asarray(start, dtype=float)
    return image[tuple(slice(a, a + c) for a, c in zip(start, CROP))], moved


def _write_doubt_studies(studies: Path) -> dict[str, np.ndarray]:
    """Two cropped phantoms and one image of noise on half their slices, all unlabelled; study id -> affine."""
    studies.mkdir(parents=True)
    affines = {}
    for seed in EASY_SEEDS:
        s = generate_subject(seed=seed, acquisition=GEOMETRY)
        image, affine = _crop(s.images["inphase"], s.affine)
        nib.save(nib.Nifti1Image(image.astype(np.float32), affine), studies / f"{s.subject_id}.nii.gz")
        affines[s.subject_id] = affine
    noise = np.random.default_rng(0).uniform(0, float(np.percentile(image, 99)), NOISE_SHAPE).astype(np.float32)
    nib.save(nib.Nifti1Image(noise, affine), studies / f"{HARD_ID}.nii.gz")
    affines[HARD_ID] = affine
    return affines


@pytest.fixture(scope="module")
def doubt_server(monailabel_python, tmp_path_factory):
    work = tmp_path_factory.mktemp("monailabel_uncertainty")
    affines = _write_doubt_studies(work / "studies")
    with _serving(monailabel_python, work, work / "studies") as srv:
        yield srv, affines


def _next_sample(server: Server, strategy: str = "uncertainty") -> dict[str, Any]:
    t0 = time.monotonic()
    res = json.loads(server.request("POST", f"/activelearning/{strategy}", {}, timeout=300))
    print(f"\n/activelearning/{strategy} {time.monotonic() - t0:.1f} s: {res.get('id')} {res.get('doubt')}")
    return res


def _save_label(server: Server, image_id: str, label: np.ndarray, affine: np.ndarray, tmp: Path) -> None:
    """PUT /datastore/label (multipart, as the MONAI Label client and Slicer send a finished label)."""
    path = tmp / f"{image_id}.nii.gz"
    nib.save(nib.Nifti1Image(label, affine), path)
    _multipart(server, "PUT", f"/datastore/label?image={image_id}&tag=final", {}, "label", path)


def _cache(server: Server) -> dict[str, Any]:
    return json.loads((server.studies / ".uncertainty_scores.json").read_text())


def test_uncertainty_strategy_is_served_next_to_random_and_first(doubt_server):
    server, _ = doubt_server
    strategies = json.loads(server.request("GET", "/info/"))["strategies"]
    assert {"random", "first", "uncertainty", "uncertainty_typical"} <= set(strategies), strategies
    assert "entropy" in strategies["uncertainty"]["description"]
    assert "typicality" in strategies["uncertainty_typical"]["description"]


def test_uncertainty_typical_ranks_doubt_times_density(doubt_server):
    server, affines = doubt_server
    pick = _next_sample(server, "uncertainty_typical")
    doubts = {k: v["doubt"]["score"] for k, v in _cache(server).items()}
    described = json.loads((server.studies / ".typicality_descriptors.json").read_text())
    assert set(doubts) == set(described) == set(affines)  # every study scored and described once, and kept
    density = pool_density({k: ScanDescriptor.from_dict(v["descriptor"]) for k, v in described.items()})
    print(f"doubts {doubts}, densities {density}")
    # the noise, on a field half as long as the others', is by far the least typical study and the most doubtful;
    # its doubt no longer puts it first
    assert density[HARD_ID] < 0.01 * min(d for k, d in density.items() if k != HARD_ID), density
    assert doubts[HARD_ID] == max(doubts.values())
    expected = max(sorted(doubts), key=lambda k: doubts[k] * density[k])
    assert pick["id"] == expected != HARD_ID, (pick, doubts, density)
    assert pick["density"] == pytest.approx(density[expected]) and pick["doubt"]["score"] == doubts[expected]
    assert pick["score"] == pytest.approx(doubts[expected] * density[expected])


def test_uncertainty_picks_the_hard_image_then_another_once_it_is_labelled(doubt_server, tmp_path):
    server, affines = doubt_server
    first = _next_sample(server)
    assert first["id"] == HARD_ID, first
    cache = _cache(server)
    assert set(cache) == set(affines)  # every unlabelled image was scored once, and kept
    scores = {k: v["doubt"]["score"] for k, v in cache.items()}
    # the noise is far more doubtful than a phantom the model knows (measured: about 0.6 against 0.05)
    assert scores[HARD_ID] > 0.3 > max(v for k, v in scores.items() if k != HARD_ID), scores
    assert first["doubt"] == cache[HARD_ID]["doubt"]

    _save_label(server, HARD_ID, np.zeros(NOISE_SHAPE, np.uint8), affines[HARD_ID], tmp_path)
    second = _next_sample(server)
    easy = {k: v for k, v in scores.items() if k != HARD_ID}
    assert second["id"] == max(sorted(easy), key=easy.get), (second, scores)
    assert _cache(server) == cache  # ranked from the cache, nothing scored again

    # new weights (a training round rewrites model.pt) make the cached doubts stale: every image is scored again
    model = server.app / "model" / DEFAULT_NAME / "models" / "model.pt"
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 1_000_000_000))
    third = _next_sample(server)
    assert third["id"] == second["id"]  # same weights, so the same ranking
    refreshed = _cache(server)
    assert {k: v["key"]["model_mtime_ns"] for k, v in refreshed.items() if k != HARD_ID} == {
        k: model.stat().st_mtime_ns for k in easy
    }


# --- the setup helpers, without a MONAI Label environment ---------------------------------------------------------


def test_torchvision_guard_goes_after_the_header_once_and_fails_only_when_called(tmp_path):
    main_py = tmp_path / "main.py"
    main_py.write_text(
        "# Licence header\n#\n\nimport logging\n\nfrom torchvision.utils import make_grid\n"
        "print('imported', callable(make_grid))\n"
    )
    assert add_torchvision_guard(main_py) is True
    assert add_torchvision_guard(main_py) is False  # idempotent
    text = main_py.read_text()
    assert text.startswith("# Licence header\n#\n\n") and text.count("\n_torchvision_or_placeholder()\n") == 1
    assert text.index("\n_torchvision_or_placeholder()\n") < text.index("import logging")
    # a torchvision built for another torch fails at import, as the CUDA wheel does beside the CPU torch
    fake = tmp_path / "site" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    main_py.write_text(text + "try:\n    make_grid(None)\nexcept RuntimeError as e:\n    print('raised:', e)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    res = subprocess.run([sys.executable, str(main_py)], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert "imported True" in res.stdout and "raised: torchvision is not usable" in res.stdout, res.stdout


def test_uncertainty_strategy_is_appended_once_and_registered_from_the_bundle_copy(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    main_py = app / "main.py"
    main_py.write_text(
        "import logging\n\nlogger = logging.getLogger(__name__)\n\n\nclass MyApp:\n"
        "    def __init__(self, models):\n        self.models = models\n\n"
        "    def init_strategies(self):\n        return {'random': 'R', 'first': 'F'}\n"
    )
    assert add_uncertainty_strategy(main_py) is True
    assert add_uncertainty_strategy(main_py) is False  # idempotent
    # a stand-in bundle copy: the wrapper must import the strategy from there, not from anywhere else
    module = tmp_path / "bundle" / "scripts" / "integrations"
    module.mkdir(parents=True)
    for init in (module.parent / "__init__.py", module / "__init__.py"):
        init.write_text("")
    (module / "uncertainty_strategy.py").write_text(
        "class Uncertainty:\n    def __init__(self, bundle):\n        self.bundle = bundle\n"
    )
    (module / "uncertainty_typical_strategy.py").write_text(
        "class TypicalUncertainty:\n    def __init__(self, bundle, doubts_from):\n"
        "        self.bundle, self.doubts_from = bundle, doubts_from\n"
    )
    (app / "run.py").write_text(
        "import sys\nimport main\n\nbundle = sys.argv[1]\n"
        f"s = main.MyApp({{{DEFAULT_NAME!r}: bundle}}).init_strategies()\n"
        "print(sorted(s), s['uncertainty'].bundle == bundle, bundle in sys.path)\n"
        "print(s['uncertainty_typical'].bundle == bundle, s['uncertainty_typical'].doubts_from is s['uncertainty'])\n"
        "print(sorted(main.MyApp({}).init_strategies()))\n"
    )
    res = subprocess.run(
        [sys.executable, "run.py", str(tmp_path / "bundle")], cwd=app, capture_output=True, text=True, env={}
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "['first', 'random', 'uncertainty', 'uncertainty_typical'] True False",
        "True True",
        "['first', 'random']",
    ]
    other = tmp_path / "other.py"
    other.write_text("class SomethingElse:\n    pass\n")
    with pytest.raises(ValueError, match="no MyApp.init_strategies"):
        add_uncertainty_strategy(other)


def test_vertebral_label_names_are_added_once_and_only_where_the_served_copy_has_a_spine_network(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    main_py = app / "main.py"
    main_py.write_text(
        "import logging\nimport os\n\nlogger = logging.getLogger(__name__)\n\n\nclass Task:\n"
        "    def __init__(self):\n        self.labels = {'psoas_left': 1}\n"
        "        self._config = {'device': 'cpu'}\n\n\nclass MyApp:\n"
        "    def __init__(self, models):\n        self.models = models\n\n"
        "    def init_infers(self):\n        return {name: Task() for name in self.models}\n"
    )
    assert add_vertebral_label_names(main_py) is True
    assert add_vertebral_label_names(main_py) is False  # idempotent
    bundle, spine = tmp_path / "bundle", tmp_path / "bundle" / "models" / "spine_model.pt"
    spine.parent.mkdir(parents=True)
    (app / "run.py").write_text(
        "import sys\nimport main\n\n"
        f"task = main.MyApp({{{DEFAULT_NAME!r}: sys.argv[1], 'other': sys.argv[1]}}).init_infers()[{DEFAULT_NAME!r}]\n"
        "print((task.labels, task._config))\n"
    )

    def labels() -> dict:
        res = subprocess.run([sys.executable, "run.py", str(bundle)], cwd=app, capture_output=True, text=True, env={})
        assert res.returncode == 0, res.stderr
        labels, config = ast.literal_eval(res.stdout.strip())
        # the option for a scan without the sacrum comes with the vertebral labels, empty (count from the sacrum)
        assert config == ({"device": "cpu", "lowest_vertebra": ""} if len(labels) > 1 else {"device": "cpu"})
        return labels

    assert labels() == {"psoas_left": 1}  # no spine network in the served copy: the label map holds 1-8 only
    spine.write_bytes(b"")
    assert labels() == {
        "psoas_left": 1,
        "vertebral_body_l1": 9,
        "vertebral_body_l2": 10,
        "vertebral_body_l3": 11,
        "vertebral_body_l4": 12,
        "vertebral_body_l5": 13,
        "sacrum": 14,
    }
    other = tmp_path / "other.py"
    other.write_text("class MyApp:\n    def init_infers(self):\n        return {}\n")
    with pytest.raises(ValueError, match="no MyApp.init_infers"):
        add_vertebral_label_names(other)


def test_copy_bundle_takes_the_served_parts_only(tmp_path):
    dest = tmp_path / "model" / DEFAULT_NAME
    copied = copy_bundle(BUNDLE_ROOT, dest)
    assert set(copied) <= set(BUNDLE_PARTS) and {"configs", "scripts", "models"} <= set(copied)
    assert _sha256(dest / "models" / "model.pt") == _sha256(BUNDLE_ROOT / "models" / "model.pt")
    names = {p.name for p in dest.rglob("*")}
    assert not names & {"eval", "sample_data", ".venv", ".venv-monailabel", "__pycache__", "train_state", ".git"}
    with pytest.raises(FileExistsError):
        copy_bundle(BUNDLE_ROOT, dest)
    with pytest.raises(FileNotFoundError, match="not a servable bundle"):
        copy_bundle(tmp_path / "empty", tmp_path / "other")


def test_set_train_options_changes_existing_ids_of_the_copy_only(tmp_path):
    dest = tmp_path / "copy"
    copy_bundle(BUNDLE_ROOT, dest, parts=("configs", "models"))
    old = set_train_options(dest, {**MONAILABEL_TRAIN_OPTIONS, "val_interval": 1})
    cfg = json.loads((dest / "configs" / "train.json").read_text())
    assert cfg["learning_rate"] == 1e-4 and cfg["resume_ckpt"] == "" and cfg["val_interval"] == 1
    assert cfg["validate_at_start"] is True  # a round's model replaces the served one only if it validates better
    shipped = json.loads((BUNDLE_ROOT / "configs" / "train.json").read_text())
    assert old == {k: shipped[k] for k in ("learning_rate", "resume_ckpt", "val_interval", "validate_at_start")}
    with pytest.raises(KeyError, match="no_such_id"):
        set_train_options(dest, {"no_such_id": 1})


def test_setup_refuses_an_existing_app_dir(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="overwrite"):
        setup(str(tmp_path / "app"), bundle_dir=str(BUNDLE_ROOT))
    assert (tmp_path / "app" / "keep.txt").read_text() == "user data"


def test_server_command_is_local_offline_and_without_sam2(tmp_path):
    cmd = server_command(tmp_path / "app", tmp_path / "studies", python="/venv/bin/python", port=8123)
    assert cmd[:4] == ["/venv/bin/python", "-m", "monailabel.main", "start_server"]
    pairs = [tuple(cmd[i + 1 : i + 3]) for i, a in enumerate(cmd) if a == "--conf"]
    assert pairs == [("models", DEFAULT_NAME), ("zoo_source", "github"), ("sam2", "false")]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "8123"
