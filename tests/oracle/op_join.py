"""Joins by pandas.merge, with SQL null semantics made explicit.

spec: {"op": "join", "cases": [case, ...]} where a case is
  {"left": input index, "right": input index, "how": inner|left|right|outer|semi|anti,
   "left_on": [names], "right_on": [names], "suffixes": [left, right], "nulls_equal": bool}.
Several joins run in one call (Python start-up is the slow part of an oracle call). The result has
one row per case, in column "result": the case's table as JSON in the oracle's table form.

nulls_equal false (SQL): rows with a null in any key take no part in matching; left, right and
outer joins still return them, unmatched, and anti joins keep them. nulls_equal true is pandas'
own behaviour: null keys match null keys.
"""
import json

import numpy as np
import pandas as pd

from oracle import from_frame

PAIR_JOINS = ("inner", "left", "right", "outer")


def null_key_mask(frame, keys):
    if len(frame) == 0:
        return pd.Series([], dtype=bool)
    return frame[keys].isna().any(axis=1)


def merge(left, right, how, case):
    return pd.merge(left, right, how=how, left_on=case["left_on"], right_on=case["right_on"],
                    suffixes=tuple(case.get("suffixes", ["_x", "_y"])))


def pair_join(left, right, case):
    how = case["how"]
    if case.get("nulls_equal", False):
        layout = list(merge(left.reindex([0]), right.reindex([0]), "inner", case).columns)
        return merge(left, right, how, case)[layout]
    left_null = null_key_mask(left, case["left_on"]).to_numpy(dtype=bool)
    right_null = null_key_mask(right, case["right_on"]).to_numpy(dtype=bool)
    # pandas orders the columns differently when a side is empty; its layout for non-empty
    # frames (one row of nulls each) is the one to follow.
    layout = list(merge(left.reindex([0]), right.reindex([0]), "inner", case).columns)
    parts = [merge(left[~left_null], right[~right_null], how, case)]
    if how in ("left", "outer") and left_null.any():
        parts.append(merge(left[left_null], right.iloc[0:0], "left", case))
    if how in ("right", "outer") and right_null.any():
        parts.append(merge(left.iloc[0:0], right[right_null], "right", case))
    return pd.concat(parts, ignore_index=True)[layout]


def filter_join(left, right, case):
    """Semi: left rows with at least one match, in left order; anti: the others."""
    keys_left, keys_right = case["left_on"], case["right_on"]
    numbered = left[keys_left].copy()
    numbered.columns = ["key_%d" % i for i in range(len(keys_left))]
    numbered["row_number"] = range(len(left))
    candidates = right[keys_right].copy()
    candidates.columns = numbered.columns[:-1]
    if not case.get("nulls_equal", False):
        numbered = numbered[~null_key_mask(numbered, list(candidates.columns)).to_numpy(dtype=bool)]
        candidates = candidates[~null_key_mask(candidates, list(candidates.columns)).to_numpy(dtype=bool)]
    candidates = candidates.drop_duplicates()
    matched = pd.merge(numbered, candidates, how="inner", on=list(candidates.columns))
    has_match = set(matched["row_number"].tolist())
    keep = np.array([(i in has_match) == (case["how"] == "semi") for i in range(len(left))],
                    dtype=bool)
    # A boolean array selects rows even when it is empty (an empty list would select columns).
    return left[keep]


def as_float(series):
    return pd.Series(series.to_numpy(dtype="float64", na_value=np.nan), index=series.index)


def promote_keys(left, right, case):
    """Keys of different numeric types are compared in a common type, as deeprc does: float64
    when either is floating, else Int64 (pandas itself cannot merge Int64 with float64)."""
    left, right = left.copy(), right.copy()
    for lk, rk in zip(case["left_on"], case["right_on"]):
        if left[lk].dtype == right[rk].dtype:
            continue
        if pd.api.types.is_float_dtype(left[lk].dtype) or pd.api.types.is_float_dtype(right[rk].dtype):
            left[lk], right[rk] = as_float(left[lk]), as_float(right[rk])
        else:
            left[lk], right[rk] = left[lk].astype("Int64"), right[rk].astype("Int64")
    return left, right


def run(frames, spec):
    results = []
    for case in spec["cases"]:
        left, right = promote_keys(frames[case["left"]], frames[case["right"]], case)
        if case["how"] in PAIR_JOINS:
            frame = pair_join(left, right, case)
        else:
            frame = filter_join(left, right, case)
        results.append(json.dumps(from_frame(frame)))
    return pd.DataFrame({"result": pd.array(results, dtype="object")})
