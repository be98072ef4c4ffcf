"""Set operations on whole rows: spec {"operation": "union"|"union_all"|"intersect"|"difference"}.
Distinct rows (but union_all); nulls equal nulls; row order is not part of the contract."""
import pandas as pd


def run(frames, spec):
    a, b = frames
    operation = spec["operation"]
    if operation == "union_all":
        return pd.concat([a, b], ignore_index=True)
    if operation == "union":
        return pd.concat([a, b], ignore_index=True).drop_duplicates()
    left = a.drop_duplicates()
    right = b.drop_duplicates()
    merged = left.merge(right, how="left", on=list(a.columns), indicator=True)
    wanted = "both" if operation == "intersect" else "left_only"
    return merged[merged["_merge"] == wanted].drop(columns="_merge")
