"""drop_duplicates: spec {"subset": [names] or null (all columns), "keep": "first"|"last"|"none"}.
Kept rows stay in input order; nulls equal nulls."""


def run(frames, spec):
    keep = spec["keep"]
    subset = spec.get("subset") or None
    return frames[0].drop_duplicates(subset=subset, keep=False if keep == "none" else keep)
