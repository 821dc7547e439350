"""One typed reading of every user-facing option of the configs and command lines, checked before any work starts.

Why: options reach the bundle as JSON values from the configs, as strings from ``monai.bundle run --x false`` and
as whatever fire makes of a command line (``false`` stays the string ``"false"``, ``False`` becomes a boolean).
Read by Python truthiness, ``--overwrite false`` would switch overwriting *on*. Every option is therefore declared
once here with its type and range; :func:`validate_inference_settings` (and its train / evaluate siblings) return
the typed values, and the configs hand those, not the raw strings, to the code that acts on them. They run as the
first step of a config's ``run``, so a wrong value is refused before any file is written or any network pass runs,
with every problem listed in one message.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scripts.configuration.muscle_weights import muscle_weights
from scripts.configuration.values import BOOL_SPELLINGS, as_bool

__all__ = [
    "Option",
    "SettingsError",
    "SettingsExit",
    "INFERENCE_OPTIONS",
    "TRAIN_OPTIONS",
    "EVALUATE_OPTIONS",
    "check_settings",
    "validate_inference_settings",
    "validate_train_settings",
    "validate_evaluate_settings",
    "typed_cli_options",
    "typed_cli",
]

_NONE_SPELLINGS = ("none", "null", "")


class SettingsError(ValueError):
    """One or more options have values the bundle cannot use; the message lists each with what is accepted."""


class SettingsExit(SystemExit):
    """:class:`SettingsError` as raised by the configs' ``settings`` node: Python prints the message as the last
    lines of a ``monai.bundle run`` and exits with status 1. Why a ``SystemExit``: MONAI wraps every ``Exception`` of
    a config component in its own "Failed to instantiate component ..." error, which would bury the message under a
    long traceback. In Python, catch it by name (``ConfigWorkflow.run()`` raises it)."""


@dataclass(frozen=True)
class Option:
    """One user-facing option: its type, range and the spellings a user may type.

    Args:
        kind: ``"bool"``, ``"int"``, ``"float"``, ``"choice"``, ``"text"`` (a path or name), ``"floats"`` /
            ``"ints"`` (a list of ``length`` numbers) or ``"any"`` (passed through: a mapping, a path or None).
        low / high: inclusive bounds of a number (or of every element of a list); ``low_open`` / ``high_open`` make
            them exclusive.
        choices: the accepted values of a ``"choice"``, compared case-insensitively and returned in this spelling;
            for a ``"bool"``, words accepted besides the boolean spellings (returned in lower case).
        optional: None (and the strings "none" / "null") is accepted and returned as None.
        length: number of elements of a list option.
        multiple_of: every element of an ``"ints"`` option must be a multiple of this (the network's stride).
        parse: for an ``"any"`` option, ``parse(value, name)`` gives the typed value or raises ``ValueError``.
        help: what the option does, for the error message.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    length: int | None = None
    multiple_of: int | None = None
    help: str = ""
    parse: Callable[[Any, str], Any] | None = None

    def accepted(self) -> str:
        """What the option accepts, in words (for error messages and the documentation)."""
        none = " or none" if self.optional else ""
        if self.kind == "bool":
            return f"one of {'/'.join(BOOL_SPELLINGS + self.choices)} (any case){none}"
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}{none}"
        if self.kind in ("int", "float", "floats", "ints"):
            what = {
                "int": "an integer",
                "float": "a number",
                "floats": f"a list of {self.length} numbers",
                "ints": f"a list of {self.length} integers",
            }[self.kind]
            lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
            hi = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
            rng = " and ".join(r for r in (lo, hi) if r)
            mult = f", multiples of {self.multiple_of}" if self.multiple_of else ""
            return f"{what}{' ' + rng if rng else ''}{mult}{none}"
        return f"a text value{none}" if self.kind == "text" else "any value"


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _NONE_SPELLINGS)


def _number(value: Any, name: str, integer: bool) -> float | int:
    if isinstance(value, bool):  # True is an int in Python; as a number it is a typo
        raise ValueError(f"{name} must be a number, not the boolean {value}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, not {text!r}") from None
    if hasattr(value, "item") and not isinstance(value, (list, tuple)):
        value = value.item()  # numpy / torch scalars
    if not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, not {type(value).__name__} {value!r}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{name} must be an integer, not {value!r}")
        return int(value)
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    return float(value)


def _check_range(option: Option, value: float, name: str) -> None:
    lo_bad = option.low is not None and (value <= option.low if option.low_open else value < option.low)
    hi_bad = option.high is not None and (value >= option.high if option.high_open else value > option.high)
    if lo_bad or hi_bad:
        raise ValueError(f"{name} = {value:g} is out of range: expected {option.accepted()}")


def _list_of(value: Any, name: str) -> list[Any]:
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{name} must be a list such as [2, 2, 4], not {value!r}") from None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list such as [2, 2, 4], not {value!r}")
    return list(value)


def typed_value(option: Option, value: Any, name: str) -> Any:
    """``value`` read as ``option`` says; raises ``ValueError`` naming ``name`` and what is accepted."""
    if option.optional and _is_none(value):
        return None
    if value is None and option.kind != "any":
        raise ValueError(f"{name} must be {option.accepted()}, not none")
    if option.kind == "bool":
        if option.choices and isinstance(value, str) and value.strip().lower() in option.choices:
            return value.strip().lower()  # a word besides true/false (write_report: later)
        try:
            return as_bool(value, name)
        except ValueError:
            raise ValueError(f"{name} must be {option.accepted()}, not {value!r}") from None
    if option.kind in ("int", "float"):
        number = _number(value, name, option.kind == "int")
        _check_range(option, number, name)
        return number
    if option.kind == "choice":
        text = str(value).strip().lower() if isinstance(value, str) else value
        for choice in option.choices:
            if text == choice.lower():
                return choice
        raise ValueError(f"{name} must be {option.accepted()}, not {value!r}")
    if option.kind in ("floats", "ints"):
        items = _list_of(value, name)
        if option.length is not None and len(items) != option.length:
            raise ValueError(f"{name} must be {option.accepted()}, not {value!r} ({len(items)} values)")
        out = [_number(v, name, option.kind == "ints") for v in items]
        for v in out:
            _check_range(option, v, name)
            if option.multiple_of and v % option.multiple_of:
                raise ValueError(f"{name} must be {option.accepted()}, not {value!r}")
        return out
    if option.kind == "text":
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty text value, not {value!r}")
        return value
    if option.parse is not None:
        return option.parse(value, name)
    return value


def check_settings(options: Mapping[str, Option], values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Every value of ``values`` typed by ``options``; all problems reported together.

    Args:
        options: option name -> :class:`Option`.
        values: option name -> value as given (config value or command-line string).
        where: what the values are the settings of (``"inference.json"``), for the message.

    Returns:
        option name -> typed value, for every name of ``values``.

    Raises:
        SettingsError: an unknown option name or a value its option does not accept (one line per problem).
    """
    typed: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in values.items():
        option = options.get(name)
        if option is None:
            problems.append(f"{name}: not a setting of {where} (known: {', '.join(sorted(options))})")
            continue
        try:
            typed[name] = typed_value(option, value, name)
        except ValueError as err:
            problems.append(str(err))
    problems.extend(_cross_checks(typed))
    if problems:
        raise SettingsError(
            f"{where}: {len(problems)} setting(s) cannot be used; nothing was run or written:\n- "
            + "\n- ".join(problems)
        )
    return typed


def _cross_checks(typed: Mapping[str, Any]) -> list[str]:
    """Rules that tie two options together."""
    problems = []
    ff_scale, ff_method = typed.get("ff_scale"), typed.get("ff_method")
    if ff_scale is not None and ff_method not in (None, "auto", "vendor_map"):
        problems.append(f"ff_scale = {ff_scale} applies to a vendor FF map only, but ff_method is {ff_method}")
    if typed.get("num_classes") not in (None, 9, 15):
        problems.append(
            f"num_classes = {typed['num_classes']} must be 9 (muscles) or 15 (muscles and vertebral context)"
        )
    # the synthesis makes one image; with two network channels StackWaterFatd would replace it by water/fat again
    if (typed.get("synthesis_prob") or 0) > 0 and typed.get("network_channels") == "water_fat":
        problems.append(
            f"synthesis_prob = {typed['synthesis_prob']:g} needs network_channels inphase (the synthesis "
            "draws one image), not water_fat"
        )
    return problems


_PROB = Option("float", 0.0, 1.0, help="probability of one augmentation")
_BOOL = Option("bool")
_SPACING = Option("floats", 0.0, 20.0, low_open=True, length=3, help="network working grid, mm (x, y, z)")
_ROLES = ("water", "fat", "inphase", "opposed", "ff")

#: Options a user may set for configs/inference.json (``--name value`` on ``monai.bundle run``).
INFERENCE_OPTIONS: dict[str, Option] = {
    "dataset_dir": Option("text", help="folder of the subjects"),
    "datalist": Option("text", optional=True, help="JSON data list"),
    # any section name of the user's data list; a missing one is reported by the data-list reader, naming the file
    "datalist_key": Option("text", help="data list section"),
    "input_mapping": Option("any", optional=True, help="glob pattern per Dixon role"),
    "participants_file": Option("text", optional=True, help="BIDS participants.tsv"),
    "output_dir": Option("text", help="results folder"),
    "ckpt_path": Option("text", help="weights"),
    "spine_ckpt_path": Option("text", help="spine network weights (vertebral bodies and sacrum)"),
    "reference_file": Option("text", optional=True, help="normative reference JSON"),
    "ff_method": Option(
        "choice", choices=("auto", "water_fat", "inphase_opposed", "vendor_map", "magnitude_discrimination")
    ),
    "ff_scale": Option("choice", choices=("fraction", "percent", "permille"), optional=True),
    "erosion_mm": Option("float", 0.0, 50.0, optional=True, help="in-plane erosion of the core mean, mm"),
    "min_muscle_volume_ml": Option("float", 0.0, 10000.0),
    # the trim rule compares with fat at FF 0.8 (scripts.quantification.statistics.trim_fat_border): a threshold above
    # it is void
    "border_trim_ff": Option("float", 0.0, 0.8, low_open=True, optional=True),
    "background_weight": Option(
        "any",
        parse=muscle_weights,
        help="how many times a muscle's probability must exceed the background's (a number, or one per muscle)",
    ),
    "overwrite": _BOOL,
    "resume": _BOOL,
    # later: keep the montage panels, draw the pictures and page afterwards (python -m scripts.reporting.render_reports)
    "write_report": Option("bool", choices=("later",), help="draw the QC pictures and the HTML page: true/false/later"),
    # read and preprocess the next subjects in a background thread while the current one is segmented
    "prefetch_subjects": Option("int", 0, 8, help="subjects read ahead of the one being segmented"),
    # post-process (labels, FF, tables, pictures, writing) one subject while the network segments the next
    "background_postprocessing": Option("bool", help="overlap a subject's post-processing with the next network pass"),
    "working_spacing": _SPACING,
    "roi_size": Option("ints", 16, 1024, length=3, multiple_of=16, help="sliding-window patch, voxels"),
    "sw_batch_size": Option("int", 1, 1024),
    "sw_overlap": Option("float", 0.0, 1.0, high_open=True),
    "sw_padding_mode": Option("choice", choices=("constant", "reflect", "replicate", "circular")),
    # scripts.pipeline.fitted_window: a scan shorter than the window gets a window only as long as the scan
    "sw_fit_to_scan": Option("bool", help="shorten the window's cranio-caudal extent to a short scan"),
    "flip_ensemble": _BOOL,
    "adapt_batch_norm": _BOOL,
    # scripts.pipeline.batchnorm_adaptation.STATISTICS_SOURCES (tested equal)
    "adapt_statistics": Option(
        "choice",
        choices=("volume", "windows"),
        help="batch-norm statistics from one pass of the whole scan (volume) or from every sliding window",
    ),
    "network_channels": Option("choice", choices=("inphase", "water_fat")),
    # 9: the muscles; 15: with the vertebral context (docs/design.md); checked against the weights' output layer
    "num_classes": Option("int", 9, 15, help="network outputs: 9 (muscles) or 15 (muscles and vertebral context)"),
    # the per-level table's bounds (docs/design.md "Levels"); used only when the label map holds labels 9-14
    # scripts.pipeline.spine_network.VERTEBRAL_OUTPUTS (tested equal)
    "vertebral_outputs": Option(
        "bool",
        choices=("auto",),
        help="run the spine network for vertebral bodies and levels: auto (when its weights are there), true, false",
    ),
    "level_rule": Option(
        "choice",
        choices=("mid_disc", "mid_body"),  # scripts.quantification.levels.BOUNDARY_RULES (tested equal)
        help="vertebral level bounds: mid_disc (planes midway between bodies) or mid_body (disc-centred segments)",
    ),
    # scripts.quantification.vertebra_naming.LOWEST_BODY_NAMES (tested equal): the anchor of the level names on a scan
    # without the sacrum (docs/design.md "Levels")
    "lowest_vertebra": Option(
        "choice",
        choices=("L1", "L2", "L3", "L4", "L5"),
        optional=True,
        help="the lowest lumbar vertebral body in the field of view, which names the levels where the sacrum is "
        "not in view (e.g. L5 for an L2-L5 scan); none: the levels are named from the sacrum only",
    ),
    "amp": _BOOL,
    # scripts.pipeline.cpu_precision.CPU_PRECISIONS (tested equal)
    "cpu_precision": Option(
        "choice",
        choices=("auto", "float32", "bfloat16"),
        help="the network's arithmetic on a CPU: auto (bfloat16 where the CPU has it natively), float32, bfloat16",
    ),
    # glibc keeps freed memory for the next subject (scripts/configuration/allocator.py)
    "reuse_memory": Option("bool", help="keep freed memory in the process instead of returning it (glibc)"),
    "trust_voxel_grid": Option(
        "choice",
        choices=_ROLES,
        optional=True,
        help="adopt this image's header for the other Dixon images of a subject",
    ),
}

#: Options a user may set for configs/train.json.
TRAIN_OPTIONS: dict[str, Option] = {
    "dataset_dir": Option("text"),
    "datalist": Option("text"),
    "output_dir": Option("text"),
    "ckpt_dir": Option("text"),
    "pretrained_ckpt": Option("text", optional=True),
    "anatomical_model": Option("text", optional=True),
    "network_channels": INFERENCE_OPTIONS["network_channels"],
    "working_spacing": _SPACING,
    "num_samples": Option("int", 1, 64),
    "batch_size": Option("int", 1, 256),
    "num_workers": Option("int", 0, 256),
    "loader_workers": Option("int", 0, 256),
    "cache_rate": Option("float", 0.0, 1.0),
    "learning_rate": Option("float", 0.0, 10.0),  # 0 freezes the weights (a fine-tune start check uses it)
    "val_interval": Option("int", 1, 100000),
    "sw_padding_mode": INFERENCE_OPTIONS["sw_padding_mode"],
    "sw_fit_to_scan": INFERENCE_OPTIONS["sw_fit_to_scan"],
    "epochs": Option("int", 1, 1000000),
    "seed": Option("int", 0, 2**32 - 1),
    "field_of_view_outside": Option("choice", choices=("fill", "replicate")),
    "amp": _BOOL,
    "vertebral_context": _BOOL,
    # the synthesis mixes each voxel's lean tissue with fat by the Dixon fat fraction (tissue_synthesis.py)
    "synthesis_fat_mix": _BOOL,
    # the starting weights' validation score is the one to beat, so a fine-tune never saves a worse model.pt
    "validate_at_start": _BOOL,
    **dict.fromkeys(
        (
            "rigid_prob",
            "bspline_prob",
            "flip_prob",
            "contrast_prob",
            "coil_prob",
            "field_of_view_prob",
            "anatomical_prob",
            "intensity_prob",
            "remap_prob",
            "synthesis_prob",
        ),
        _PROB,
    ),
}

#: Options a user may set for configs/evaluate.json (on top of train.json's).
EVALUATE_OPTIONS: dict[str, Option] = {
    **TRAIN_OPTIONS,
    "eval_key": Option("text", help="data list section scored"),
    "adapt_batch_norm": _BOOL,
}


def validate_inference_settings(**values: Any) -> dict[str, Any]:
    """The options of configs/inference.json, typed and checked (see :data:`INFERENCE_OPTIONS`).

    Returns:
        option name -> typed value (``"false"`` -> False, ``"0.7"`` -> 0.7, ``"none"`` -> None).

    Raises:
        SettingsExit: an unknown name or an unusable value (the message lists each); raised before any file is read
            or written.
    """
    return _for_config(INFERENCE_OPTIONS, values, "inference.json")


def validate_train_settings(**values: Any) -> dict[str, Any]:
    """The options of configs/train.json, typed and checked (see :data:`TRAIN_OPTIONS`)."""
    return _for_config(TRAIN_OPTIONS, values, "train.json")


def validate_evaluate_settings(**values: Any) -> dict[str, Any]:
    """The options of configs/evaluate.json (train.json's plus its own), typed and checked."""
    return _for_config(EVALUATE_OPTIONS, values, "evaluate.json")


def _for_config(options: Mapping[str, Option], values: Mapping[str, Any], where: str) -> dict[str, Any]:
    try:
        return check_settings(options, values, where)
    except SettingsError as err:
        raise SettingsExit(str(err)) from None


def typed_cli_options(kwargs: Mapping[str, Any], options: Mapping[str, Option], where: str) -> dict[str, Any]:
    """A fire command line's keyword arguments with the declared ones typed (others passed through unchanged).

    Args:
        kwargs: what fire handed over.
        options: the declared options of this command (name -> :class:`Option`).
        where: the command, for the message (``"scripts.pipeline.requantify"``).

    Raises:
        SettingsError: a declared option has an unusable value.
    """
    declared = {k: v for k, v in kwargs.items() if k in options}
    typed = check_settings(options, declared, where)
    return {**kwargs, **typed}


def _option_from_annotation(annotation: Any) -> Option | None:
    """The :class:`Option` of a plain ``bool`` / ``int`` / ``float`` parameter (optionally ``| None``), else None."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = {p.strip() for p in str(text).replace("Optional[", "").replace("]", "").split("|")}
    optional = "None" in parts
    parts.discard("None")
    kind = {
        frozenset({"bool"}): "bool",
        frozenset({"int"}): "int",
        frozenset({"float"}): "float",
        frozenset({"int", "float"}): "float",
        frozenset({"bool", "str"}): "bool",
    }.get(frozenset(parts))
    return Option(kind, optional=optional) if kind else None


def typed_cli(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` for ``fire.Fire``, with its ``bool``, ``int`` and ``float`` parameters typed by this module's rules.

    Why: fire turns ``--overwrite false`` into the string ``"false"`` (only ``False`` becomes a boolean), which a
    function reads as true. The wrapper reads every such argument, positional or named, as its annotation says
    (``true/false/yes/no/1/0`` for booleans, ``none`` for optional values) and refuses what does not fit, listing
    every problem, before ``func`` runs (:class:`SettingsExit`: the message, status 1, no traceback). fire still
    sees ``func``'s own signature and docstring.
    """
    signature = inspect.signature(func)
    options = {
        name: opt
        for name, prm in signature.parameters.items()
        if (opt := _option_from_annotation(prm.annotation)) is not None
    }

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        where = func.__module__ + "." + func.__name__
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:  # a missing or unknown argument: say which, not a traceback
            raise SettingsExit(f"{where}: {error}; run it with --help to list its arguments") from None
        given = {k: v for k, v in bound.arguments.items() if k in options}
        bound.arguments.update(_for_config(options, given, where))
        return func(*bound.args, **bound.kwargs)

    return wrapper


def documented_spellings(option: Option) -> list[Any]:
    """Values a user may type for ``option``, one per documented spelling (used by the tests)."""
    if option.kind == "bool":
        return [*BOOL_SPELLINGS, *(s.upper() for s in BOOL_SPELLINGS), True, False]
    if option.kind == "choice":
        return [*option.choices, *(c.upper() for c in option.choices)] + (["none"] if option.optional else [])
    return ["none"] if option.optional else []
