"""Rows kept by a predicate, computed with pandas, for tests/compute/filter_test.cpp.

spec: {"op": "filter", "predicate": NODE} or {"op": "filter", "predicates": [NODE, ...]} where
NODE is one of
  {"kind": "and" | "or", "args": [NODE, ...]}    {"kind": "not", "arg": NODE}
  {"kind": "cmp", "op": "==" | "!=" | "<" | "<=" | ">" | ">=", "left": VALUE, "right": VALUE}
  {"kind": "isnull", "arg": VALUE, "negated": bool}
  {"kind": "in", "arg": VALUE, "values": [VALUE, ...], "negated": bool}
  {"kind": "term", "arg": VALUE}                 (a bool column or constant)
and VALUE is {"column": NAME} or {"constant": x} (dates and timestamps as integers).

Columns are turned into pandas' nullable dtypes (Float64, string, Int*, boolean), whose
comparisons give NA for missing values and whose &, |, ~ follow Kleene's three-valued logic,
which is SQL's. Rows where the predicate is NA or False are dropped.
"""
import operator

import pandas as pd

OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
       ">": operator.gt, ">=": operator.ge}


def nullable(frame):
    out = pd.DataFrame(index=frame.index)
    for name in frame.columns:
        column = frame[name]
        if column.dtype == "float64":
            out[name] = pd.array(column.to_numpy(), dtype="Float64")
        elif column.dtype == object:
            out[name] = pd.array(column.tolist(), dtype="string")
        else:
            out[name] = column
    return out


def as_bool(value, rows):
    if isinstance(value, pd.Series):
        return value.astype("boolean")
    return pd.Series(pd.array([value] * rows, dtype="boolean"))


def value_of(frame, value):
    if "column" in value:
        return frame[value["column"]]
    return value["constant"]


def evaluate(frame, node):
    rows = len(frame)
    kind = node["kind"]
    if kind in ("and", "or"):
        result = evaluate(frame, node["args"][0])
        for arg in node["args"][1:]:
            other = evaluate(frame, arg)
            result = (result & other) if kind == "and" else (result | other)
        return result
    if kind == "not":
        return ~evaluate(frame, node["arg"])
    if kind == "cmp":
        left = value_of(frame, node["left"])
        right = value_of(frame, node["right"])
        return as_bool(OPS[node["op"]](left, right), rows)
    if kind == "isnull":
        arg = value_of(frame, node["arg"])
        result = as_bool(arg.isna(), rows)
        return ~result if node["negated"] else result
    if kind == "in":
        arg = value_of(frame, node["arg"])
        values = [v["constant"] for v in node["values"]]
        result = arg.isin(values).astype("boolean")
        result[arg.isna()] = pd.NA
        return ~result if node["negated"] else result
    if kind == "term":
        return as_bool(value_of(frame, node["arg"]), rows)
    raise ValueError("unknown node kind " + kind)


def run(frames, spec):
    """With "predicate": the rows kept. With "predicates": one column "mask_J" per predicate,
    true, false or null (unknown) per row."""
    frame = frames[0].reset_index(drop=True)
    data = nullable(frame)
    if "predicates" in spec:
        out = {f"mask_{j}": evaluate(data, p).reset_index(drop=True).array
               for j, p in enumerate(spec["predicates"])}
        return pd.DataFrame(out, index=range(len(frame)))
    mask = evaluate(data, spec["predicate"])
    keep = mask.fillna(False).astype(bool).to_numpy()
    return frame[keep].reset_index(drop=True)
