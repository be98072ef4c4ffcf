"""Writing one section of bench/RESULTS.md: the text between a begin and an end marker is
replaced (or the section is appended under `heading` when the markers are missing), and the file
is replaced atomically, so an interrupted run leaves the previous results whole."""
import os
import sys


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
