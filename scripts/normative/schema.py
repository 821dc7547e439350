"""The reference file schema and its validator.

A reference is a versioned JSON data file (``format_version`` "1.0"; :func:`validate_reference` enforces it):

.. code-block:: text

    {
      "format_version": "1.0",                 # major version 1 is what this module reads
      "reference_id": str,                     # stable name, e.g. "bmc2026_lumbar_ff"
      "version": str,                          # version of the values, e.g. "1.0.0"
      "description": str,                      # optional
      "source": {"citation": str, "doi": str | null, ...},
      "n": int,                                # subjects in the whole reference
      "population": {...},                     # free-form object: "healthy", "age_range_years": [lo, hi], ...
      "ff_definition": {"statistic": str, "is_pdff": bool, ...},
      "unit": "percent",                       # optional; FF is always in percent
      "side": "lr_mean",                       # the "muscles" blocks hold the mean of the left and right values
      "percentile_method": str,                # optional; how the percentiles were computed
      "unknown": [str, ...],                   # optional; what the reference does NOT tell (e.g. no sex strata)
      "age_bands": [[lo, hi], ...],            # optional; inclusive completed years of the age-band strata
      "strata": [                              # at least the pooled stratum sex = age_band = activity = "all"
        {
          "sex": "all" | "female" | "male" | ...,
          "age_band": "all" | "lo-hi",         # inclusive completed years: lo <= age < hi + 1
          "activity": "all" | str,
          "n": int,                            # subjects in the stratum
          "small_stratum": bool,               # optional (default false): n below the builder's min_n
          "muscles": {                         # L/R mean; keys are scripts.labels.MUSCLES
            "psoas": {"p25": float, "p50": float, "p75": float, "p5": ..., "n": int (optional)}, ...
          },
          "per_side": {"left": {muscle: {...}}, "right": {muscle: {...}}},   # optional
          "age_centiles": {                    # optional; only on strata with age_band "all"
            "method": str, "basis": str, "n": int, "fitted_age_range": [lo, hi],
            "ages": [20, 25, ..., 70],
            "muscles": {muscle: {"p5": [one value per age], "p25": [...], ...}}
          }
        }, ...
      ],
      "vertebral_levels": {                    # optional; per-level strata built from a cohort run's per-level table
        "boundary_rule": "mid_disc" | "mid_body",   # the level bounds the values were measured with
        "levels": {                            # level name (L1 ... L5, or L3-L4 ... with mid_body) -> strata
          "L3": [stratum, ...], ...            # each list as "strata" above, its pooled stratum required
        },
        ...                                    # free-form provenance (subjects left out, rules)
      }
    }

Readers that do not know ``vertebral_levels`` ignore it (it is optional and outside ``strata``), so a reference with
per-level strata stays a valid format 1.0 file for the whole-muscle comparison.

Percentile keys are ``"p"`` plus the percentile (``"p5"``, ``"p2.5"``); ``p25``, ``p50`` and ``p75`` are required,
values are FF in percent within [0, 100] and must not decrease with the percentile. Sex and activity levels are
compared in lower case, with ``f``/``woman`` read as ``female`` and ``m``/``man`` as ``male``
(:mod:`scripts.normative.conventions`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from scripts.labels import MUSCLES, SIDES
from scripts.normative.conventions import (
    ALL,
    LR_MEAN,
    REQUIRED_PERCENTILES,
    STRATUM_KEYS,
    is_int,
    is_number,
    norm_level,
    parse_band,
    parse_pkey,
    pkey,
    sorted_table,
)

__all__ = ["FORMAT_VERSION", "LEVEL_RULES", "ReferenceFormatError", "validate_reference"]

FORMAT_VERSION: str = "1.0"
_SUPPORTED_MAJOR = 1
_REQUIRED_KEYS: tuple[str, ...] = (
    "format_version",
    "reference_id",
    "version",
    "source",
    "n",
    "population",
    "ff_definition",
    "side",
    "strata",
)


class ReferenceFormatError(ValueError):
    """A reference file or dict does not follow the schema; the message names the file and the faulty field."""


def _check_percentile_entry(entry: Any, where: str, stratum_n: int | None) -> None:
    if not isinstance(entry, Mapping):
        raise ReferenceFormatError(f"{where}: expected an object of percentiles, got {type(entry).__name__}")
    for key, value in entry.items():
        if key == "n":
            if not is_int(value) or value < 1:
                raise ReferenceFormatError(f"{where}.n: expected a positive integer, got {value!r}")
            if stratum_n is not None and value > stratum_n:
                raise ReferenceFormatError(f"{where}.n: {value} is larger than the stratum n = {stratum_n}")
            continue
        q = parse_pkey(key)
        if q is None or not 0.0 < q < 100.0:
            raise ReferenceFormatError(f"{where}: unknown key {key!r}; expected 'n' or percentiles 'p<q>', 0 < q < 100")
        if not is_number(value) or not 0.0 <= value <= 100.0:
            raise ReferenceFormatError(
                f"{where}.{key}: expected a fat fraction in percent within [0, 100], got {value!r}"
            )
    missing = [pkey(q) for q in REQUIRED_PERCENTILES if pkey(q) not in entry]
    if missing:
        raise ReferenceFormatError(f"{where}: missing required percentiles {missing}")
    qs, vs = sorted_table(entry)
    for i in range(1, len(qs)):
        if vs[i] < vs[i - 1]:
            raise ReferenceFormatError(
                f"{where}: {pkey(qs[i - 1])} = {vs[i - 1]:g} is greater than {pkey(qs[i])} = {vs[i]:g}; "
                "percentiles must not decrease"
            )


def _check_muscle_block(block: Any, where: str, stratum_n: int | None) -> None:
    if not isinstance(block, Mapping) or not block:
        raise ReferenceFormatError(f"{where}: expected a non-empty object keyed by muscle name")
    for muscle, entry in block.items():
        if muscle not in MUSCLES:
            raise ReferenceFormatError(f"{where}: unknown muscle {muscle!r}; expected one of {MUSCLES}")
        _check_percentile_entry(entry, f"{where}.{muscle}", stratum_n)


def _check_centile_table(table: Any, w: str, n_ages: int) -> None:
    """One muscle's centile lists: known keys, one finite value per age, required centiles, no crossing."""
    if not isinstance(table, Mapping):
        raise ReferenceFormatError(f"{w}: expected an object of centile lists")
    for key, values in table.items():
        q = parse_pkey(key)
        if q is None or not 0.0 < q < 100.0:
            raise ReferenceFormatError(f"{w}: unknown key {key!r}; expected centiles 'p<q>', 0 < q < 100")
        if not isinstance(values, list) or len(values) != n_ages or not all(is_number(v) for v in values):
            raise ReferenceFormatError(f"{w}.{key}: expected {n_ages} finite numbers (one per age)")
    missing = [pkey(q) for q in REQUIRED_PERCENTILES if pkey(q) not in table]
    if missing:
        raise ReferenceFormatError(f"{w}: missing required centiles {missing}")
    keys = sorted(table, key=lambda k: parse_pkey(k) or 0.0)
    grid = np.array([table[k] for k in keys], dtype=float)
    if np.any(np.diff(grid, axis=0) < 0):
        raise ReferenceFormatError(f"{w}: centiles cross (a lower centile exceeds a higher one at some age)")


def _check_age_centiles(curves: Any, where: str) -> None:
    if not isinstance(curves, Mapping):
        raise ReferenceFormatError(f"{where}: expected an object")
    ages = curves.get("ages")
    if not isinstance(ages, list) or len(ages) < 2 or not all(is_number(a) for a in ages):
        raise ReferenceFormatError(f"{where}.ages: expected a list of at least 2 numbers, got {ages!r}")
    if any(b <= a for a, b in zip(ages, ages[1:])):
        raise ReferenceFormatError(f"{where}.ages: ages must increase strictly, got {ages}")
    rng = curves.get("fitted_age_range")
    if rng is not None and (not isinstance(rng, list) or len(rng) != 2 or not all(is_number(a) for a in rng)):
        raise ReferenceFormatError(f"{where}.fitted_age_range: expected [lo, hi], got {rng!r}")
    muscles = curves.get("muscles")
    if not isinstance(muscles, Mapping) or not muscles:
        raise ReferenceFormatError(f"{where}.muscles: expected a non-empty object keyed by muscle name")
    for muscle, table in muscles.items():
        w = f"{where}.muscles.{muscle}"
        if muscle not in MUSCLES:
            raise ReferenceFormatError(f"{w}: unknown muscle; expected one of {MUSCLES}")
        _check_centile_table(table, w, len(ages))


def _check_header(data: Mapping[str, Any]) -> None:
    """Everything above ``strata``: required keys, format version, source, n, population, FF definition, side."""
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise ReferenceFormatError(f"missing required keys {missing}")
    fmt = data["format_version"]
    if not isinstance(fmt, str) or not re.match(r"^\d+\.\d+$", fmt):
        raise ReferenceFormatError(f"format_version: expected text such as '1.0', got {fmt!r}")
    if int(fmt.split(".")[0]) != _SUPPORTED_MAJOR:
        raise ReferenceFormatError(f"format_version {fmt!r} is not supported; this module reads {_SUPPORTED_MAJOR}.x")
    for key in ("reference_id", "version"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise ReferenceFormatError(f"{key}: expected non-empty text, got {data[key]!r}")
    src_block = data["source"]
    if not isinstance(src_block, Mapping) or not isinstance(src_block.get("citation"), str):
        raise ReferenceFormatError("source: expected an object with a 'citation' text (and 'doi': text or null)")
    if "doi" in src_block and src_block["doi"] is not None and not isinstance(src_block["doi"], str):
        raise ReferenceFormatError(f"source.doi: expected text or null, got {src_block['doi']!r}")
    if not is_int(data["n"]) or data["n"] < 1:
        raise ReferenceFormatError(f"n: expected a positive integer, got {data['n']!r}")
    if not isinstance(data["population"], Mapping):
        raise ReferenceFormatError("population: expected an object")
    ffd = data["ff_definition"]
    if (
        not isinstance(ffd, Mapping)
        or not isinstance(ffd.get("statistic"), str)
        or not isinstance(ffd.get("is_pdff"), bool)
    ):
        raise ReferenceFormatError(
            "ff_definition: expected an object with 'statistic' (text) and 'is_pdff' (true/false)"
        )
    if data["side"] != LR_MEAN:
        raise ReferenceFormatError(
            f"side: expected {LR_MEAN!r} (the 'muscles' blocks hold the L/R mean), got {data['side']!r}"
        )
    if "unit" in data and data["unit"] != "percent":
        raise ReferenceFormatError(f"unit: fat fraction must be in 'percent', got {data['unit']!r}")
    if "unknown" in data and (
        not isinstance(data["unknown"], list) or not all(isinstance(u, str) for u in data["unknown"])
    ):
        raise ReferenceFormatError("unknown: expected a list of texts")


def _check_stratum_keys(stratum: Any, where: str, total_n: int) -> tuple[str, str, str]:
    """The stratum's levels, age band, n and small flag; returns its normalised (sex, age_band, activity)."""
    if not isinstance(stratum, Mapping):
        raise ReferenceFormatError(f"{where}: expected an object")
    for key in STRATUM_KEYS:
        value = stratum.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ReferenceFormatError(
                f"{where}.{key}: expected non-empty text ('all' when not stratified), got {value!r}"
            )
    band = stratum["age_band"]
    if band != ALL:
        parsed = parse_band(band)
        if parsed is None or parsed[0] > parsed[1]:
            raise ReferenceFormatError(
                f"{where}.age_band: expected 'all' or 'lo-hi' in years with lo <= hi, got {band!r}"
            )
    n = stratum.get("n")
    if not is_int(n) or n < 1:
        raise ReferenceFormatError(f"{where}.n: expected a positive integer, got {n!r}")
    if n > total_n:
        raise ReferenceFormatError(f"{where}.n: {n} is larger than the reference n = {total_n}")
    if "small_stratum" in stratum and not isinstance(stratum["small_stratum"], bool):
        raise ReferenceFormatError(f"{where}.small_stratum: expected true/false, got {stratum['small_stratum']!r}")
    sex, age_band, activity = (norm_level(stratum[k], k) for k in STRATUM_KEYS)
    return sex, age_band, activity


def _check_stratum_values(stratum: Mapping[str, Any], where: str) -> None:
    """The stratum's L/R-mean block, optional per-side blocks and optional age centile curves."""
    n = stratum["n"]
    if "muscles" not in stratum:
        raise ReferenceFormatError(f"{where}: missing 'muscles'")
    _check_muscle_block(stratum["muscles"], f"{where}.muscles", n)
    per_side = stratum.get("per_side")
    if per_side is not None:
        if not isinstance(per_side, Mapping) or not set(per_side) <= set(SIDES):
            raise ReferenceFormatError(f"{where}.per_side: expected an object with keys among {SIDES}")
        for side, block in per_side.items():
            _check_muscle_block(block, f"{where}.per_side.{side}", n)
    if "age_centiles" in stratum:
        if stratum["age_band"] != ALL:
            raise ReferenceFormatError(f"{where}.age_centiles: only allowed on strata with age_band 'all'")
        _check_age_centiles(stratum["age_centiles"], f"{where}.age_centiles")


def _check_strata(strata: Any, total_n: int) -> None:
    if not isinstance(strata, list) or not strata:
        raise ReferenceFormatError("strata: expected a non-empty list")
    seen: set[tuple[str, str, str]] = set()
    for i, stratum in enumerate(strata):
        where = f"strata[{i}]"
        ident = _check_stratum_keys(stratum, where, total_n)
        if ident in seen:
            raise ReferenceFormatError(
                f"{where}: duplicate stratum sex={ident[0]}, age_band={ident[1]}, activity={ident[2]}"
            )
        seen.add(ident)
        _check_stratum_values(stratum, where)
    if (ALL, ALL, ALL) not in seen:
        raise ReferenceFormatError(
            "strata: the pooled stratum (sex, age_band and activity all 'all') is required as the fallback"
        )


#: the level bound rules a per-level block may name (scripts.quantification.levels.BOUNDARY_RULES)
LEVEL_RULES: tuple[str, ...] = ("mid_disc", "mid_body")


def _check_vertebral_levels(block: Any, total_n: int) -> None:
    """The optional per-level block: a known bound rule and, per level name, a list of valid strata."""
    where = "vertebral_levels"
    if not isinstance(block, Mapping):
        raise ReferenceFormatError(f"{where}: expected an object")
    if block.get("boundary_rule") not in LEVEL_RULES:
        raise ReferenceFormatError(
            f"{where}.boundary_rule: expected one of {LEVEL_RULES}, got {block.get('boundary_rule')!r}"
        )
    levels = block.get("levels")
    if not isinstance(levels, Mapping) or not levels:
        raise ReferenceFormatError(f"{where}.levels: expected a non-empty object keyed by level name")
    for name, strata in levels.items():
        if not isinstance(name, str) or not re.match(r"^(T12|L[1-5]|S1)(-(L[1-5]|S1))?$", name):
            raise ReferenceFormatError(f"{where}.levels: unknown level name {name!r}; expected e.g. 'L3' or 'L3-L4'")
        try:
            _check_strata(strata, total_n)
        except ReferenceFormatError as err:
            raise ReferenceFormatError(f"{where}.levels.{name}.{err}") from None


def validate_reference(data: Any, source: str | os.PathLike[str] = "<reference dict>") -> None:
    """Check that ``data`` follows the reference schema of this module (see the module docstring).

    Args:
        data: the parsed JSON object.
        source: the file name (or a description) that error messages start with.

    Raises:
        ReferenceFormatError: naming ``source``, the faulty field and the value received.
    """
    src = str(source)
    if not isinstance(data, Mapping):
        raise ReferenceFormatError(f"{src}: expected a JSON object at the top level, got {type(data).__name__}")
    try:
        _check_header(data)
        _check_strata(data["strata"], data["n"])
        if "vertebral_levels" in data:
            _check_vertebral_levels(data["vertebral_levels"], data["n"])
    except ReferenceFormatError as err:
        # One place prefixes the source, so every message names the file exactly once.
        raise ReferenceFormatError(f"{src}: {err}") from None
