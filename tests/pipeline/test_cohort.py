"""scripts/pipeline/cohort.py: resume spelled as users type it, and a bad subject recorded while the others go on."""

from __future__ import annotations

import pandas as pd
import pytest
from monai.data import DataLoader, Dataset
from scripts.io.errors import DixonInputError
from scripts.pipeline.cohort import CohortFailures, FailureLog, IsolatingLoader, pending_subjects


class _Finished:
    """A stand-in run record for which every subject is finished by this run and nothing conflicts."""

    output_dir = "eval"

    def conflict(self, subject, files):
        return None

    def is_done(self, subject, files):
        return True


@pytest.mark.parametrize("resume, todo", [(True, 0), ("true", 0), ("false", 2), ("no", 2), ("False", 2), (0, 2)])
def test_resume_false_in_any_spelling_redoes_finished_subjects(resume, todo):
    # failed check 2: "--resume false" used to leave finished subjects skipped
    data = [{"subject": "a", "water": "a_W.nii.gz"}, {"subject": "b", "water": "b_W.nii.gz"}]
    assert len(pending_subjects(data, _Finished(), resume=resume)) == todo


def _load(entry):
    if entry["subject"] == "bad":
        # as scripts.pipeline.load_dixon.LoadDixond raises it
        err = DixonInputError("subject 'bad': water image 'bad_W.nii.gz': is all zero (no signal)", "bad_W.nii.gz")
        err.subject = "bad"
        raise err
    return {"subject": entry["subject"], "x": 1.0}


@pytest.mark.parametrize("num_workers, prefetch", [(0, 0), (1, 0), (0, 1), (0, 3)])
def test_a_bad_subject_is_recorded_and_the_others_complete(tmp_path, num_workers, prefetch):
    # failed check 5: one bad subject stopped the cohort, its message buried in a long traceback
    data = [{"subject": s} for s in ("a", "bad", "c")]
    failures = FailureLog(tmp_path)
    loader = IsolatingLoader(
        DataLoader(Dataset(data, transform=_load), batch_size=1, num_workers=num_workers), failures, prefetch
    )
    assert [b["subject"][0] for b in loader] == ["a", "c"]
    table = pd.read_csv(tmp_path / "cohort_failures.csv")
    assert table.subject.tolist() == ["bad"] and len(table) == 1
    assert table.problem[0].startswith("water image 'bad_W.nii.gz': is all zero")
    if num_workers == 0:
        assert table.file[0] == "bad_W.nii.gz"
    with pytest.raises(CohortFailures, match=r"1 of 3 subject\(s\) failed.*\n  bad: .*is all zero"):
        failures.finish(loader.attempted)


def test_prefetch_reads_the_next_subject_while_the_current_one_is_processed(tmp_path):
    import threading

    read = []
    second_read = threading.Event()

    def load(entry):
        read.append(entry["subject"])
        if entry["subject"] == "b":
            second_read.set()
        return {"subject": entry["subject"]}

    data = [{"subject": s} for s in ("a", "b", "c", "d")]
    loader = IsolatingLoader(DataLoader(Dataset(data, transform=load), batch_size=1), FailureLog(tmp_path), 1)
    seen = []
    for batch in loader:
        if batch["subject"][0] == "a":
            # while "a" is being processed, "b" is read in the background (without prefetch this would time out)
            assert second_read.wait(timeout=10)
        seen.append(batch["subject"][0])
    assert seen == ["a", "b", "c", "d"] and read == seen and loader.attempted == 4


def test_prefetch_passes_run_level_errors_and_stops_with_the_caller(tmp_path):
    from scripts.pipeline.run_record import RunConflictError

    def subjects():
        yield {"subject": ["a"]}
        raise RunConflictError("results of a different run in the output folder")

    class Loader:
        def __iter__(self):
            return subjects()

    loader = IsolatingLoader(Loader(), FailureLog(tmp_path), 2)
    with pytest.raises(RunConflictError, match="different run"):
        list(loader)
    # a caller that stops early leaves no reader thread waiting forever
    data = [{"subject": str(i)} for i in range(20)]
    loader = IsolatingLoader(DataLoader(Dataset(data, transform=_load), batch_size=1), FailureLog(tmp_path), 1)
    for _ in loader:
        break
    import threading
    import time

    deadline = time.time() + 5
    while any(t.name == "subject-prefetch" for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "subject-prefetch" for t in threading.enumerate())


@pytest.mark.parametrize("bad", [-1, 1.5, "two", True])
def test_prefetch_must_be_a_whole_number(tmp_path, bad):
    with pytest.raises(ValueError, match="prefetch must be a whole number"):
        IsolatingLoader([], FailureLog(tmp_path), bad)


def test_a_clean_run_leaves_no_failures_table(tmp_path):
    (tmp_path / "cohort_failures.csv").write_text("subject,file,problem\nold,,from an earlier run\n")
    FailureLog(tmp_path).finish(3)
    assert not (tmp_path / "cohort_failures.csv").exists()


def test_a_subject_whose_quantification_fails_is_recorded_and_the_others_finish(tmp_path):
    # IsolatingEvaluator: a failure after loading (network pass, post-processing, tables) costs only that subject
    import torch
    from ignite.engine import Events
    from monai.data import DataLoader
    from monai.transforms import Lambdad
    from scripts.pipeline.cohort import FailureLog, IsolatingEvaluator

    def quantify(pred):
        if float(pred.max()) > 1.5:  # the second subject's "quantification" fails
            raise ValueError("FF map and label map do not overlap")
        return pred

    data = [{"subject": s, "image": torch.full((1, 4, 4, 4), v)} for s, v in (("a", 1.0), ("b", 2.0), ("c", 1.0))]
    failures = FailureLog(tmp_path)
    seen = []
    evaluator = IsolatingEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(data, batch_size=1),
        network=torch.nn.Identity(),
        postprocessing=Lambdad("pred", quantify),
        failures=failures,
    )
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(e.state.output))
    evaluator.run()
    assert [r["subject"] for r in failures.rows] == ["b"]
    assert "do not overlap" in failures.rows[0]["problem"]
    assert sum(1 for out in seen if out) == 2  # a and c went through post-processing
    with pytest.raises(SystemExit, match="1 of 3 subject"):
        failures.finish(3)


def test_background_postprocessing_overlaps_the_next_subject_and_isolates_failures(tmp_path):
    # the post-processing of subject i runs while the network works on subject i + 1; same results, same order
    import threading

    import torch
    from monai.data import DataLoader
    from monai.transforms import Lambdad
    from scripts.pipeline.cohort import FailureLog, IsolatingEvaluator

    events = []
    net_b_ran = threading.Event()

    class Net(torch.nn.Module):
        def forward(self, x):
            if float(x.max()) == 2.0:
                net_b_ran.set()
            return x

    def quantify(pred):
        value = float(pred.max())
        if value == 1.0:  # a's post-processing finishes only once b's network pass has run beside it
            events.append(("b's network ran during a's post-processing", net_b_ran.wait(timeout=20)))
        if value == 3.0:
            raise ValueError("FF map and label map do not overlap")
        events.append(("post", value))
        return pred

    data = [{"subject": s, "image": torch.full((1, 4, 4, 4), v)} for s, v in (("a", 1.0), ("b", 2.0), ("c", 3.0))]
    data.append({"subject": "d", "image": torch.full((1, 4, 4, 4), 4.0)})
    failures = FailureLog(tmp_path)
    evaluator = IsolatingEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(data, batch_size=1),
        network=Net(),
        postprocessing=Lambdad("pred", quantify),
        failures=failures,
        background_postprocessing="true",
    )
    evaluator.run()
    # b's network pass ran while a was in post-processing (overlap); every post finished before run() ended
    assert events[0] == ("b's network ran during a's post-processing", True)
    assert [e[1] for e in events if e[0] == "post"] == [1.0, 2.0, 4.0]
    assert [r["subject"] for r in failures.rows] == ["c"] and "do not overlap" in failures.rows[0]["problem"]


def test_background_postprocessing_stops_the_run_on_a_run_level_error(tmp_path):
    import torch
    from monai.data import DataLoader
    from monai.transforms import Lambdad
    from scripts.pipeline.cohort import FailureLog, IsolatingEvaluator
    from scripts.pipeline.run_record import RunConflictError

    done = []

    def post(pred):
        if float(pred.max()) == 1.0:
            raise RunConflictError("results of a different run in the output folder")
        done.append(float(pred.max()))
        return pred

    data = [{"subject": s, "image": torch.full((1, 4, 4, 4), v)} for s, v in (("a", 1.0), ("b", 2.0), ("c", 3.0))]
    evaluator = IsolatingEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(data, batch_size=1),
        network=torch.nn.Identity(),
        postprocessing=Lambdad("pred", post),
        failures=FailureLog(tmp_path),
        background_postprocessing=True,
    )
    with pytest.raises(Exception, match="different run"):
        evaluator.run()
    assert 3.0 not in done  # stopped before the third subject was post-processed
