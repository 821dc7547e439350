"""A validated normative reference and the choice of the stratum that fits a subject.

:meth:`Reference.select` picks the most specific stratum matching the subject's sex, age and activity, falling back
to the pooled level ``"all"`` key by key; when the reference holds age centile curves it may read the percentiles
off the curves at the subject's age instead of an age band.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scripts.normative.conventions import ALL, LR_MEAN, STRATUM_KEYS, age_in_band, norm_level, parse_band
from scripts.normative.schema import validate_reference

__all__ = ["StratumSelection", "Reference"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StratumSelection:
    """The stratum of a reference chosen for a subject, and why.

    Args:
        sex: stratum level (``"all"`` when pooled).
        age_band: ``"lo-hi"``, ``"all"``, or ``"curve@<age>"`` when read off age centile curves.
        activity: stratum level.
        n: subjects in the stratum.
        small_stratum: the stratum has fewer subjects than its builder's ``min_n``.
        muscles: muscle -> {percentile key: FF %} (L/R mean).
        per_side: side -> muscle -> {percentile key: FF %}; empty when the reference has no per-side values.
        requested: the sex, age and activity asked for (normalised).
        fallback: the requested keys answered by the pooled ``"all"`` level.
        index: position of the stratum in the reference's ``strata``.
        age_clamped: the age lay outside the centile curves' fitted range and was clamped to it.
    """

    sex: str
    age_band: str
    activity: str
    n: int
    small_stratum: bool
    muscles: dict[str, dict[str, float]]
    per_side: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    requested: dict[str, Any] = field(default_factory=dict)
    fallback: tuple[str, ...] = ()
    index: int = 0
    age_clamped: bool = False

    @property
    def label(self) -> str:
        """``"sex=female, age_band=all, activity=all"``."""
        return f"sex={self.sex}, age_band={self.age_band}, activity={self.activity}"

    @property
    def age_adjusted(self) -> bool:
        """True when the percentiles come from age centile curves."""
        return self.age_band.startswith("curve@")

    def entry(self, muscle: str, side: str = LR_MEAN) -> dict[str, float] | None:
        """Percentile entry of ``muscle`` on ``side`` (``"lr_mean"``, ``"left"``, ``"right"``), or ``None``."""
        block = self.muscles if side == LR_MEAN else self.per_side.get(side, {})
        return block.get(muscle)


def _level(stratum: Mapping[str, Any], key: str) -> str:
    return norm_level(stratum[key], key)


def _requested(sex: str | None, age: float | str | None, activity: str | None) -> dict[str, Any]:
    """The subject's sex, age and activity, normalised; a non-finite age counts as not given."""
    req_age: float | str | None
    if age is None:
        req_age = None
    elif isinstance(age, str):
        req_age = age.strip().lower()
    else:
        req_age = float(age)
        if not math.isfinite(req_age):
            req_age = None
    return {
        "sex": norm_level(sex, "sex") if sex is not None else None,
        "age": req_age,
        "activity": norm_level(activity, "activity") if activity is not None else None,
    }


def _matches(stratum: Mapping[str, Any], requested: Mapping[str, Any]) -> bool:
    """Each key of the stratum is ``"all"`` or the subject's level (age: the band holding the age, or its label)."""
    s, a, band = _level(stratum, "sex"), _level(stratum, "activity"), _level(stratum, "age_band")
    req_age = requested["age"]
    if s != ALL and s != requested["sex"]:
        return False
    if a != ALL and a != requested["activity"]:
        return False
    if band == ALL:
        return True
    if isinstance(req_age, float):
        parsed = parse_band(band)
        return parsed is not None and age_in_band(req_age, parsed)
    return req_age is not None and band == req_age


def _rank(item: tuple[int, Mapping[str, Any]], keys: Sequence[str] = STRATUM_KEYS) -> tuple[Any, ...]:
    """Sort key: more specific keys, then specific in the earlier key, then larger n, then earlier in the file."""
    i, stratum = item
    specific = tuple(_level(stratum, k) != ALL for k in keys)
    return (sum(specific), specific, int(stratum["n"]), -i)


@dataclass(frozen=True)
class Reference:
    """A validated normative reference (see :mod:`scripts.normative.schema` for the schema).

    Args:
        data: the reference object; validated and deep-copied by :meth:`from_dict`.
        path: the file it was read from, if any.
    """

    data: dict[str, Any]
    path: Path | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> Reference:
        """Validate ``data`` and wrap a deep copy of it."""
        validate_reference(data, path if path is not None else "<reference dict>")
        return cls(copy.deepcopy(dict(data)), Path(path) if path is not None else None)

    @property
    def reference_id(self) -> str:
        return str(self.data["reference_id"])

    @property
    def version(self) -> str:
        return str(self.data["version"])

    @property
    def n(self) -> int:
        return int(self.data["n"])

    @property
    def strata(self) -> list[dict[str, Any]]:
        return list(self.data["strata"])

    @property
    def level_rule(self) -> str | None:
        """The bound rule of the per-level strata (``mid_disc``/``mid_body``), or None without per-level strata."""
        block = self.data.get("vertebral_levels")
        return str(block["boundary_rule"]) if block else None

    @property
    def level_names(self) -> tuple[str, ...]:
        """The vertebral levels with strata (e.g. ``("L1", ..., "L5")``); empty without per-level strata."""
        block = self.data.get("vertebral_levels")
        return tuple(block["levels"]) if block else ()

    def for_level(self, level: str) -> Reference | None:
        """This reference with the strata of one vertebral level in place of the whole-muscle strata.

        The header (id, version, n, population, FF definition) is kept, so :meth:`select` and
        :func:`scripts.normative.comparison.compare_to_reference` work on it unchanged.

        Args:
            level: a level name as in the per-level table (``"L3"``, or ``"L3-L4"`` with the mid_body rule).

        Returns:
            The level's reference, or None when the reference has no strata for ``level``.
        """
        block = self.data.get("vertebral_levels")
        if not block or level not in block["levels"]:
            return None
        data = {k: v for k, v in self.data.items() if k != "vertebral_levels"}
        data["strata"] = block["levels"][level]
        return Reference(copy.deepcopy(data), self.path)

    def select(
        self,
        sex: str | None = None,
        age: float | str | None = None,
        activity: str | None = None,
        *,
        side: str = LR_MEAN,
        allow_small_strata: bool = False,
        use_age_centiles: bool = True,
    ) -> StratumSelection:
        """Choose the most specific stratum that matches the subject, falling back to ``"all"`` per key.

        A stratum matches when each of its keys is ``"all"`` or equals the subject's level (age: the band that
        contains ``age`` in completed years, or the band label itself). Among matches the one with the most
        specific keys wins; ties go to the one specific in the earlier key of (sex, age_band, activity), sex first
        because sex differences in FF are the best documented, then to the larger n. Small strata are skipped
        while a larger one matches, unless ``allow_small_strata``. The pooled stratum always matches, so there is
        always an answer; :attr:`StratumSelection.fallback` lists the requested keys it could not honour.

        When ``use_age_centiles`` and ``age`` is a number and ``side`` is the L/R mean, a stratum with age centile
        curves (age_band ``"all"``) at least as specific in sex and activity as the chosen one takes precedence:
        its curves, interpolated linearly at ``age``, use every subject of the stratum rather than one band.

        Args:
            sex: e.g. ``"female"``, ``"F"``; ``None`` = not given.
            age: years, or an age-band label such as ``"30-39"``; ``None`` = not given.
            activity: activity level as spelled in the reference (case-insensitive); ``None`` = not given.
            side: ``"lr_mean"``, ``"left"`` or ``"right"``; curves exist only for the L/R mean.
            allow_small_strata: let a small stratum win over a larger, less specific one.
            use_age_centiles: prefer age centile curves when available.
        """
        requested = _requested(sex, age, activity)
        req_age = requested["age"]
        candidates = [(i, s) for i, s in enumerate(self.data["strata"]) if _matches(s, requested)]
        large = [c for c in candidates if not c[1].get("small_stratum", False)]
        pool = candidates if allow_small_strata or not large else large
        index, best = max(pool, key=_rank)

        if use_age_centiles and side == LR_MEAN and isinstance(req_age, float):
            curved = [c for c in pool if _level(c[1], "age_band") == ALL and "age_centiles" in c[1]]
            if curved:
                c_index, c_best = max(curved, key=lambda c: _rank(c, ("sex", "activity")))
                if _rank((c_index, c_best), ("sex", "activity"))[0] >= _rank((index, best), ("sex", "activity"))[0]:
                    return self._curve_selection(c_index, c_best, req_age, requested)
        return self._stratum_selection(index, best, requested)

    def _stratum_selection(self, index: int, best: Mapping[str, Any], requested: dict[str, Any]) -> StratumSelection:
        asked = (("sex", requested["sex"]), ("age_band", requested["age"]), ("activity", requested["activity"]))
        fallback = tuple(key for key, req in asked if req is not None and _level(best, key) == ALL)
        if fallback:
            logger.info(
                "reference %s: no stratum for %s; using %s",
                self.reference_id,
                ", ".join(fallback),
                {k: best[k] for k in STRATUM_KEYS},
            )
        return StratumSelection(
            sex=str(best["sex"]),
            age_band=str(best["age_band"]),
            activity=str(best["activity"]),
            n=int(best["n"]),
            small_stratum=bool(best.get("small_stratum", False)),
            muscles={m: dict(e) for m, e in best["muscles"].items()},
            per_side={s: {m: dict(e) for m, e in b.items()} for s, b in best.get("per_side", {}).items()},
            requested=requested,
            fallback=fallback,
            index=index,
        )

    def _curve_selection(
        self, index: int, stratum: Mapping[str, Any], age: float, requested: dict[str, Any]
    ) -> StratumSelection:
        curves = stratum["age_centiles"]
        ages = np.asarray(curves["ages"], dtype=float)
        lo, hi = curves.get("fitted_age_range", [ages[0], ages[-1]])
        clamped = not (max(lo, ages[0]) <= age <= min(hi, ages[-1]))
        muscles: dict[str, dict[str, float]] = {}
        for muscle, table in curves["muscles"].items():
            # Linear interpolation between tabulated ages keeps the centiles ordered (a convex combination).
            muscles[muscle] = {k: float(np.interp(age, ages, np.asarray(v, dtype=float))) for k, v in table.items()}
        fallback = tuple(
            key
            for key, req in (("sex", requested["sex"]), ("activity", requested["activity"]))
            if req is not None and norm_level(stratum[key], key) == ALL
        )
        return StratumSelection(
            sex=str(stratum["sex"]),
            age_band=f"curve@{age:g}",
            activity=str(stratum["activity"]),
            n=int(curves.get("n", stratum["n"])),
            small_stratum=bool(stratum.get("small_stratum", False)),
            muscles=muscles,
            per_side={},
            requested=requested,
            fallback=fallback,
            index=index,
            age_clamped=clamped,
        )
