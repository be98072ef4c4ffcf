"""The pandas oracle: an independent implementation that deeprc's operators are checked against.

Usage: oracle.py REQUEST.json RESULT.json

REQUEST holds {"spec": {"op": NAME, ...parameters}, "inputs": [table, ...]}, where a table is
{"columns": [{"name", "type", "values"}]} (deeprc type names; dates and timestamps as integers).
The op NAME is the function `run(inputs, spec)` of module op_NAME.py beside this file; it gets
pandas DataFrames and returns one. The result is written in the same table form.
"""
import importlib
import json
import math
import os
import sys

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

INTEGER_DTYPES = {
    "int8": "Int8", "int16": "Int16", "int32": "Int32", "int64": "Int64",
    "uint8": "UInt8", "uint16": "UInt16", "uint32": "UInt32", "uint64": "UInt64",
    "date32": "Int32",
}


def to_frame(table):
    """A DataFrame with pandas' nullable dtypes, so that nulls are not NaN in integer columns."""
    data = {}
    for column in table["columns"]:
        kind = column["type"]
        values = column["values"]
        if kind in INTEGER_DTYPES:
            series = pd.array(values, dtype=INTEGER_DTYPES[kind])
        elif kind.startswith("timestamp"):
            series = pd.array(values, dtype="Int64")
        elif kind in ("float32", "float64"):
            series = pd.array([math.nan if v is None else v for v in values], dtype="float64")
        elif kind == "bool":
            series = pd.array(values, dtype="boolean")
        else:
            series = pd.array(values, dtype="object")
        data[column["name"]] = series
    return pd.DataFrame(data)


def plain(value):
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def from_frame(frame):
    columns = []
    for name in frame.columns:
        columns.append({"name": str(name), "values": [plain(v) for v in frame[name].tolist()]})
    return {"columns": columns}


def main():
    request_path, result_path = sys.argv[1], sys.argv[2]
    with open(request_path) as f:
        request = json.load(f)
    spec = request["spec"]
    frames = [to_frame(t) for t in request["inputs"]]
    module = importlib.import_module("op_" + spec["op"])
    result = module.run(frames, spec)
    with open(result_path, "w") as f:
        json.dump(from_frame(result), f)


if __name__ == "__main__":
    main()
