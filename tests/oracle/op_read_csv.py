"""pandas.read_csv on spec["path"], with the column types deeprc used (spec["types"]) and the
same null tokens (spec["null_values"]). Dates and timestamps come back as integers (days since the
epoch, microseconds since the epoch), as the oracle's table form wants."""
import pandas as pd

NUMBER_DTYPES = {
    "int8": "Int8", "int16": "Int16", "int32": "Int32", "int64": "Int64",
    "uint8": "UInt8", "uint16": "UInt16", "uint32": "UInt32", "uint64": "UInt64",
    "float32": "float32", "float64": "float64", "bool": "boolean",
}


def run(frames, spec):
    types = spec["types"]
    dtype = {name: NUMBER_DTYPES.get(kind, "object") for name, kind in types.items()}
    frame = pd.read_csv(spec["path"], sep=spec.get("delimiter", ","), dtype=dtype,
                        keep_default_na=False, na_values=spec["null_values"])
    epoch = pd.Timestamp("1970-01-01")
    for name, kind in types.items():
        if kind == "date32":
            parsed = pd.to_datetime(frame[name], format="%Y-%m-%d")
            frame[name] = ((parsed - epoch) // pd.Timedelta(days=1)).astype("Int64")
        elif kind.startswith("timestamp"):
            parsed = pd.to_datetime(frame[name])
            frame[name] = ((parsed - epoch) // pd.Timedelta(microseconds=1)).astype("Int64")
    return frame
