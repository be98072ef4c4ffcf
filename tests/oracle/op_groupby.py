"""Group-by with aggregates, as pandas computes them.

spec: {"keys": [names], "dropna": bool, "aggregates": [{"column", "kind", "ddof", "quantile",
"name"}]}. With no keys the whole frame is one group (one output row, even when empty).
Groups come in order of first appearance (pandas' sort=False, made explicit by each group's first
row), keys are taken from that first row, so their values and types are exactly the input's.
"""
import numpy as np
import pandas as pd


def _non_null(series):
    return series[series.notna()]


def _object_reduce(grouped, how):
    """min/max/first/last of string columns: pandas 1.5 cannot compare None with str."""
    def reduce(x):
        x = _non_null(x)
        if len(x) == 0:
            return None
        if how == "first":
            return x.iloc[0]
        if how == "last":
            return x.iloc[-1]
        return min(x) if how == "min" else max(x)
    return grouped.agg(reduce)


def _aggregate(grouped, series, a, regroup):
    kind = a["kind"]
    if kind == "sum":
        return grouped.sum(min_count=1)
    if kind == "count":
        return grouped.count()
    if kind == "nunique":
        return grouped.nunique(dropna=True)
    if kind in ("min", "max", "first", "last"):
        if series.dtype == object:
            return _object_reduce(grouped, kind)
        return getattr(grouped, kind)()
    if series.dtype == "boolean":
        grouped = regroup(series.astype("float64"))
    if kind == "mean":
        return grouped.mean()
    if kind == "var":
        return grouped.var(ddof=a["ddof"])
    if kind == "std":
        return grouped.std(ddof=a["ddof"])
    if kind == "median":
        return grouped.median()
    if kind == "quantile":
        return grouped.quantile(a["quantile"], interpolation="linear")
    raise ValueError("unknown aggregate " + kind)


def run(frames, spec):
    df = frames[0].copy()
    keys = spec["keys"]
    rows = np.arange(len(df))
    df["__row"] = rows
    if not keys:
        df["__all"] = 0
    by = [df[k] for k in keys] if keys else [df["__all"]]

    def regroup(series):
        return series.groupby(by, dropna=spec["dropna"], sort=False)

    grouped = df.groupby(by, dropna=spec["dropna"], sort=False)
    first = grouped["__row"].min()
    order = np.argsort(first.to_numpy(), kind="stable")
    out = {}
    first_rows = first.to_numpy()[order]
    for key in keys:
        out[key] = df[key].iloc[first_rows].reset_index(drop=True)
    for a in spec["aggregates"]:
        series = df[a["column"]]
        result = _aggregate(regroup(series), series, a, regroup)
        assert result.index.equals(first.index), (a, result.index, first.index)
        values = list(result.to_numpy(dtype=object)[order])
        if not keys and len(df) == 0:  # pandas has no group at all; we have one
            values = [0 if a["kind"] in ("count", "nunique") else None]
        out[a["name"]] = pd.Series(values, dtype=object)
    return pd.DataFrame(out)
