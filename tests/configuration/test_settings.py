"""The typed settings layer (scripts/configuration/settings.py): every documented option read in every documented
spelling,
wrong values refused together and before anything is run or written, and the configs wired through it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser, ConfigWorkflow
from scripts.configuration.settings import (
    EVALUATE_OPTIONS,
    INFERENCE_OPTIONS,
    TRAIN_OPTIONS,
    SettingsError,
    SettingsExit,
    check_settings,
    documented_spellings,
    typed_cli,
    typed_cli_options,
    validate_inference_settings,
)

BUNDLE_ROOT = Path(__file__).resolve().parents[2]
_ALL = {**INFERENCE_OPTIONS, **TRAIN_OPTIONS, **EVALUATE_OPTIONS}


@pytest.mark.parametrize("name", sorted(_ALL))
def test_every_option_accepts_its_documented_spellings(name):
    option = _ALL[name]
    for value in documented_spellings(option):
        typed = check_settings({name: option}, {name: value}, "test")[name]
        if option.kind == "bool":
            want = str(value).lower() in ("true", "yes", "1")
            assert typed is want, (value, typed)
        elif option.kind == "choice" and typed is not None:
            assert typed in option.choices and typed.lower() == str(value).lower()
        else:
            assert typed is None, (value, typed)


@pytest.mark.parametrize("spelling", ["false", "False", "FALSE", "no", "No", "0", False, 0])
def test_overwrite_false_in_any_spelling_is_false(spelling):
    # the failed check: "--overwrite false" (lower case) used to switch overwriting on
    assert validate_inference_settings(overwrite=spelling)["overwrite"] is False


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("border_trim_ff", 0.9, "<= 0.8"),
        ("border_trim_ff", "abc", "must be a number"),
        ("sw_overlap", 1.0, "< 1"),
        ("roi_size", [100, 100, 50], "multiples of 16"),
        ("working_spacing", [2, 2], "3 numbers"),
        ("ff_method", "magic", "one of auto"),
        ("overwrite", "flase", "true/false"),
        ("sw_batch_size", 0, ">= 1"),
        ("min_muscle_volume_ml", -1, ">= 0"),
        ("trust_voxel_grid", "label", "one of water"),
        ("resume", None, "not none"),
        ("amp", 2, "true/false"),
        ("num_classes", 12, "9 (muscles) or 15"),
        ("num_classes", 16, "<= 15"),
    ],
)
def test_wrong_values_are_refused_naming_option_and_what_is_accepted(name, value, words):
    with pytest.raises(SettingsExit, match=name) as err:
        validate_inference_settings(**{name: value})
    assert words in str(err.value)


def test_all_problems_are_reported_together_and_unknown_options_refused():
    with pytest.raises(SettingsExit) as err:
        validate_inference_settings(overwrite="flase", border_trim_ff=0.9, flip_ensemle=False)
    text = str(err.value)
    assert "3 setting(s)" in text and "flip_ensemle: not a setting" in text and "nothing was run or written" in text


def test_typed_numbers_lists_and_none():
    typed = validate_inference_settings(
        border_trim_ff="none",
        erosion_mm="1.5",
        working_spacing="[2, 2, 4]",
        roi_size=[128.0, 128, 64],
        ff_scale="Percent",
        ff_method="vendor_map",
    )
    assert typed == {
        "border_trim_ff": None,
        "erosion_mm": 1.5,
        "working_spacing": [2.0, 2.0, 4.0],
        "roi_size": [128, 128, 64],
        "ff_scale": "percent",
        "ff_method": "vendor_map",
    }
    with pytest.raises(SettingsExit, match="vendor FF map only"):
        validate_inference_settings(ff_scale="percent", ff_method="water_fat")


def test_every_user_option_of_inference_json_goes_through_the_settings_node():
    config = json.loads((BUNDLE_ROOT / "configs" / "inference.json").read_text())
    assert config["run"][0] == "$@settings"
    node = config["settings"]
    assert node["_target_"] == "scripts.configuration.settings.validate_inference_settings"
    assert set(node) - {"_target_"} == set(INFERENCE_OPTIONS) and all(k in config for k in INFERENCE_OPTIONS)
    # the code that acts on a switch reads the typed value, never the raw override
    text = json.dumps({k: v for k, v in config.items() if k not in ("settings", *INFERENCE_OPTIONS)})
    for name in (
        "overwrite",
        "resume",
        "write_report",
        "flip_ensemble",
        "adapt_batch_norm",
        "amp",
        "border_trim_ff",
        "sw_overlap",
        "roi_size",
    ):
        assert f'"@{name}"' not in text, name


def test_lower_case_false_reaches_the_run_record_the_report_and_resume_as_false():
    parser = ConfigParser()
    parser.read_config(BUNDLE_ROOT / "configs" / "inference.json")
    parser.update({"overwrite": "false", "write_report": "no", "resume": "False"})
    assert parser.get_parsed_content("run_record").overwrite is False
    steps = parser.get_parsed_content("postprocessing").transforms
    assert [s.enabled for s in steps if type(s).__name__ == "SubjectReportd"] == [False]
    assert parser.get_parsed_content("settings")["resume"] is False


def test_an_invalid_value_is_refused_before_any_file_is_written(tmp_path):
    out = tmp_path / "eval"
    workflow = ConfigWorkflow(
        config_file=str(BUNDLE_ROOT / "configs" / "inference.json"),
        workflow_type="infer",
        bundle_root=str(BUNDLE_ROOT),
        output_dir=str(out),
        dataset_dir=str(tmp_path / "none"),
        border_trim_ff=0.9,
    )
    workflow.initialize()
    # a SystemExit, so that "monai.bundle run" ends with this message, not MONAI's wrapper
    with pytest.raises(SettingsExit, match="border_trim_ff = 0.9"):
        workflow.run()
    assert not out.exists()


@pytest.mark.parametrize(
    "config, validator", [("train.json", "validate_train_settings"), ("evaluate.json", "validate_evaluate_settings")]
)
def test_train_and_evaluate_check_their_settings_first(config, validator):
    files = [str(BUNDLE_ROOT / "configs" / "train.json")]
    if config == "evaluate.json":
        files.append(str(BUNDLE_ROOT / "configs" / "evaluate.json"))
    parser = ConfigParser()
    parser.read_config(files)
    assert parser["run"][0] == "$@settings"
    assert parser["settings"]["_target_"] == f"scripts.configuration.settings.{validator}"
    parser.update({"amp": "false", "flip_prob": "0.5"})
    typed = parser.get_parsed_content("settings")
    assert typed["amp"] is False and typed["flip_prob"] == 0.5
    parser.update({"flip_prob": 1.5})
    with pytest.raises(SettingsExit, match="flip_prob = 1.5"):
        parser.get_parsed_content("settings", lazy=False)


def test_fire_command_lines_type_their_declared_options():
    options = {"overwrite": INFERENCE_OPTIONS["overwrite"]}
    assert typed_cli_options({"overwrite": "false", "other": "x"}, options, "cli") == {"overwrite": False, "other": "x"}
    with pytest.raises(SettingsError, match="cli"):
        typed_cli_options({"overwrite": "perhaps"}, options, "cli")


def test_fire_functions_get_typed_arguments_positional_or_named():
    def run(out: str, overwrite: bool = False, n: int = 1, trim: float | None = 0.7) -> tuple:
        return out, overwrite, n, trim

    cli = typed_cli(run)
    assert cli("x", "false", "3", "none") == ("x", False, 3, None)
    assert cli("x", overwrite="YES", trim="0.5") == ("x", True, 1, 0.5)
    with pytest.raises(SettingsExit, match="overwrite must be one of"):
        cli("x", overwrite="flase")
    with pytest.raises(SettingsExit, match=r"missing a required argument: 'out'; run it with --help"):
        cli(overwrite="true")
    with pytest.raises(SettingsExit, match=r"unexpected keyword argument 'ovewrite'"):
        cli("x", ovewrite="true")


def test_a_study_command_with_subcommands_shows_its_arguments_for_help_and_names_a_missing_one():
    import subprocess
    import sys

    from tests.conftest import BUNDLE_ROOT

    def call(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "scripts.studies.ablation", "run", *args],
            cwd=BUNDLE_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    shown = call("--help")
    # fire prints its help on stderr when not on a terminal
    assert shown.returncode == 0 and "DATASET_DIR" in shown.stderr and "Traceback" not in shown.stderr
    missing = call("--test_dir", "x")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "dataset_dir" in missing.stderr


def test_level_rule_reaches_the_level_step_and_the_run_record_and_a_wrong_one_is_refused():
    from scripts.quantification.levels import BOUNDARY_RULES

    assert INFERENCE_OPTIONS["level_rule"].choices == BOUNDARY_RULES
    parser = ConfigParser()
    parser.read_config(BUNDLE_ROOT / "configs" / "inference.json")
    steps = parser.get_parsed_content("postprocessing").transforms
    assert [s.rule for s in steps if type(s).__name__ == "LevelStatisticsd"] == ["mid_disc"]  # the default
    parser.update({"level_rule": "MID_BODY"})
    steps = parser.get_parsed_content("postprocessing").transforms
    assert [s.rule for s in steps if type(s).__name__ == "LevelStatisticsd"] == ["mid_body"]
    assert parser.get_parsed_content("run_record").settings_in_force["level_rule"] == "mid_body"
    with pytest.raises(SettingsExit, match=r"level_rule must be one of mid_disc, mid_body, not .endplates."):
        validate_inference_settings(level_rule="endplates")


def test_lowest_vertebra_reaches_both_naming_steps_and_the_run_record_and_a_wrong_one_is_refused():
    from scripts.quantification.vertebra_naming import LOWEST_BODY_NAMES

    assert INFERENCE_OPTIONS["lowest_vertebra"].choices == LOWEST_BODY_NAMES
    parser = ConfigParser()
    parser.read_config(BUNDLE_ROOT / "configs" / "inference.json")
    steps = parser.get_parsed_content("postprocessing").transforms
    naming = {type(s).__name__: s for s in steps}
    assert (
        naming["MergeSpineLabelsd"].lowest_vertebra is None
        and naming["NameVertebraeFromSacrumd"].t.lowest_vertebra is None
    )
    parser.update({"lowest_vertebra": "l5"})
    steps = {type(s).__name__: s for s in parser.get_parsed_content("postprocessing").transforms}
    assert (
        steps["MergeSpineLabelsd"].lowest_vertebra == "L5"
        and steps["NameVertebraeFromSacrumd"].t.lowest_vertebra == "L5"
    )
    assert parser.get_parsed_content("run_record").settings_in_force["lowest_vertebra"] == "L5"
    with pytest.raises(SettingsExit, match=r"lowest_vertebra must be one of L1, L2, L3, L4, L5"):
        validate_inference_settings(lowest_vertebra="S1")
