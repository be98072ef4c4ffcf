"""Sort orders computed by pandas, for tests/compute/sort_test.cpp.

spec: {"op": "sort", "sorts": [[{"column", "ascending", "nulls_first"}, ...], ...]}
Returns one int64 column "order_J" per sort J: the input row numbers in sorted order.

pandas has one na_position for all keys, so each key becomes two sort columns: a null flag
(0 for the rows that come first: the nulls when nulls_first, else the values) and the values.
The flag separates the nulls, so where pandas puts them in the value column does not matter.
Strings are Python str, compared by code point, which is the byte order of their UTF-8 form.
Inputs hold no NaN (floats from the oracle's tables are never NaN), so NaN here means null.
"""
import pandas as pd


def sort_order(frame, keys):
    work = pd.DataFrame(index=frame.index)
    by = []
    ascending = []
    for k, key in enumerate(keys):
        values = frame[key["column"]]
        is_null = values.isna()
        flag = (~is_null) if key["nulls_first"] else is_null
        work[f"flag_{k}"] = flag.astype("int8")
        work[f"value_{k}"] = values
        by += [f"flag_{k}", f"value_{k}"]
        ascending += [True, bool(key["ascending"])]
    ordered = work.sort_values(by=by, ascending=ascending, kind="stable")
    return list(ordered.index)


def run(frames, spec):
    frame = frames[0].reset_index(drop=True)
    out = {}
    for j, keys in enumerate(spec["sorts"]):
        out[f"order_{j}"] = pd.array(sort_order(frame, keys), dtype="Int64")
    return pd.DataFrame(out, index=range(len(frame)))
