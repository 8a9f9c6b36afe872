"""The verdicts of a fan-out/fan-in scoring run as a DataFrame (``intel.pipeline``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._dtypes import STRING, frame

if TYPE_CHECKING:
    import pandas as pd

    from ..intel.pipeline import Verdict

__all__ = ["verdicts_df"]

RISK_LEVELS = ("critical", "high", "medium", "low", "not scored")
_SCHEMA = {"type": STRING, "value": STRING, "tlp": STRING, "risk_score": "Int64",
           "risk_level": ("cat", RISK_LEVELS, True), "enrichers": STRING, "missing": STRING,
           "breakdown": STRING}


def verdicts_df(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    """One row per indicator, riskiest first (unscored last): ``type``, ``value``
    (defanged), ``tlp``, ``risk_score``, ``risk_level``, ``enrichers`` (queues that
    answered, e.g. ``"3/4"``), ``missing`` (those that did not) and ``breakdown`` (the
    score factor by factor, or why there is no score)."""
    df = frame([v.as_row() for v in verdicts], _SCHEMA)
    df = df.sort_values(["risk_score", "value"], ascending=[False, True], na_position="last")
    return df.reset_index(drop=True)
