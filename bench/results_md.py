"""What the bench/run_*.py scripts share: running a benchmark command for its JSON lines,
"median (min–max)" cells, and writing one section of bench/RESULTS.md — the text between a begin
and an end marker is replaced (or the section is appended under `heading` when the markers are
missing), and the file is replaced atomically, so an interrupted run leaves the previous results
whole."""
import json
import os
import shlex
import statistics
import subprocess
import sys


def run_json(command, env, timeout=None):
    """Runs `command` (echoed to stderr) and returns its JSON lines, each also printed; a failure
    stops the run with the command's stderr."""
    print("+", " ".join(shlex.quote(c) for c in command), file=sys.stderr, flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for line in lines:
        print(json.dumps(line), flush=True)
    return lines


def spread(values, fmt="{:.3f}"):
    """The median, and the range in parentheses when there is more than one value."""
    median = statistics.median(values)
    if len(values) == 1:
        return fmt.format(median)
    return f"{fmt.format(median)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def write_section(path, begin, end, section, heading=""):
    text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + (heading + "\n\n" if heading else "") + section + "\n"
    with open(path + ".tmp", "w") as out:
        out.write(text)
    os.replace(path + ".tmp", path)


def publish(path, begin, end, section, heading=""):
    """Prints the section when `path` is empty (a dry run), else writes it into `path`."""
    if not path:
        print(section)
        return
    write_section(path, begin, end, section, heading)
    print(f"wrote {path}", file=sys.stderr)
