"""Technologies: a small YAML descriptor per process (model file, device names, VDD, load, bounds).

Built-in descriptors live in `spice/` (ptm65, sky130); a designer with foundry models writes their own
descriptor and passes its path (`--tech my_tsmc65.yaml`). `load_technology("ptm65")` returns a `Technology`.
`corner`/`corners` are process corners (library sections); a PVT `Corner` is one of them (or the only models) at a
supply and a temperature, and the descriptor's `corner_sets` name lists of them (`tech.corner_set("all")`).
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .corner import TEMP_RANGE_C, Corner, CornerError, parse_corner_sets
from .design import DESIGN_KEYS, Design
from .errors import ConfigError, IcgenError
from .paths import PACKAGE_DIR, SPICE_DIR
from .units import UnitError, format_si, parse_quantity

DEFAULT_TECH = "ptm65"


class TechError(IcgenError):
    """A technology that cannot be found or whose descriptor is wrong."""


def spice_dir() -> Path:
    """The folder of built-in technology descriptors and model files (`spice/` in the repository)."""
    return SPICE_DIR


class FrozenDict(dict):
    """A dict that refuses changes (and pickles, so a Technology crosses to simulator workers)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("a technology's mappings are read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: str(kv[0]))))


@dataclass(frozen=True)
class Technology:
    """A process: where its models are and how the op-amp template instantiates them."""

    name: str
    """Short name, e.g. ptm65."""
    description: str
    """One line for `icgen tech list`."""
    model_file: Path
    """Absolute path of the SPICE model or library file."""
    nmos: str
    """NMOS model (or subcircuit) name."""
    pmos: str
    """PMOS model (or subcircuit) name."""
    vdd_v: float
    """Supply voltage."""
    cl_f: float
    """Load capacitance on VOUT."""
    bounds: Mapping[str, tuple[float, float]]
    """Allowed range of each design variable, SI units (read-only)."""
    corner: str | None = None
    """Library section to load with `.lib FILE CORNER`; None means `.include FILE`."""
    corners: tuple[str, ...] = ()
    """Sections the library offers (process corners)."""
    subcircuit: bool = False
    """True when devices are subcircuits (instances named X...), as in sky130."""
    length_unit_m: float = 1.0
    """The deck's unit for L and W: 1.0 for metres, 1e-6 when the models take microns."""
    device_parameter: str = "@{instance}[{parameter}]"
    """How ngspice names an operating-point parameter of a device; {instance} is e.g. m1."""
    includes: tuple[str, ...] = ()
    """Model files to `.include` instead of model_file, absolute paths; `{corner}` is replaced by the corner."""
    params: Mapping[str, float] = field(default_factory=dict)
    """`.param` lines the included models need (e.g. sky130's Monte Carlo switches off)."""
    subckts: tuple[str, ...] = ()
    """Load only these `.subckt` blocks of the included files (icgen.core.modelsubset: a cached copy without the
    others, the same numbers); empty loads the files whole."""
    descriptor: Path | None = None
    """The YAML file this came from."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Other keys of the descriptor, kept for provenance."""
    allow_control: bool = False
    """Accept model files that hold `.control` blocks (they can run shell commands): only for files you trust."""
    corner_sets: Mapping[str, tuple[Corner, ...]] = field(default_factory=dict)
    """Named PVT corner sets from the descriptor's `corner_sets` (always with `nominal`), read-only."""
    temp_c: float | None = None
    """Simulation temperature written as `.temp`; None leaves ngspice's default, 27 °C (set by `at_corner`)."""

    def __post_init__(self) -> None:
        """Checks of the values alone; `check_files` looks at the disk."""
        if not self.corner_sets:
            object.__setattr__(self, "corner_sets", {"nominal": (Corner.make(self.corner, self.vdd_v, 27.0),)})
        for name in ("bounds", "params", "extra", "corner_sets"):  # frozen all the way down
            object.__setattr__(self, name, FrozenDict(getattr(self, name)))
        rendered = [self.name, self.nmos, self.pmos, *self.params] + ([self.corner] if self.corner else [])
        bad = [v for v in rendered if not _TOKEN.fullmatch(str(v))]
        if bad:  # every one of these is written into the deck: a newline there would start a .control block
            raise TechError(f"technology {str(self.name)[:40]!r}: {str(bad[0])[:40]!r} is not a plain name; use "
                            f"letters, digits and _ . + -")
        unsafe = [str(f) for f in (self.model_file, *self.includes) if _UNSAFE_PATH.search(str(f))]
        if unsafe:
            raise TechError(f"technology {self.name}: the model path {unsafe[0]!r} holds a quote or a control "
                            f"character; rename the file or link to it from a plain path")
        if not (0.3 <= self.vdd_v <= 10):
            raise TechError(f"technology {self.name}: vdd_v={self.vdd_v} is not a supply voltage; use e.g. 1.2")
        if not (0 < self.cl_f < 1e-6):
            raise TechError(f"technology {self.name}: cl_f={self.cl_f} is not a load capacitance; use e.g. 1e-12")
        missing = [k for k in DESIGN_KEYS if k not in self.bounds]
        if missing:
            raise TechError(f"technology {self.name}: bounds lack {', '.join(missing)}")
        for key, (low, high) in self.bounds.items():
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise TechError(f"technology {self.name}: bounds of {key} must be [low, high] with low < high")
            if key not in ("VIN", "VB1") and low <= 0:
                raise TechError(f"technology {self.name}: bounds of {key} must be positive")
        if self.corner is not None and self.corners and self.corner not in self.corners:
            raise TechError(f"technology {self.name}: corner {self.corner!r} is not one of {', '.join(self.corners)}")
        if self.temp_c is not None and not (TEMP_RANGE_C[0] <= self.temp_c <= TEMP_RANGE_C[1]):
            raise TechError(f"technology {self.name}: temp_c={self.temp_c:g} is outside "
                            f"{TEMP_RANGE_C[0]:g}..{TEMP_RANGE_C[1]:g} °C")

    def check_files(self) -> "Technology":
        """This technology, or a TechError naming a model file that does not exist or holds a `.control` block
        (which can run shell commands) without the descriptor's `allow_control: true`."""
        files = [self.model_file] + [Path(inc.format(corner=self.corner or "")) for inc in self.includes]
        for path in files:
            if not path.is_file():
                raise TechError(f"technology {self.name}: model file {path} does not exist; fix it in "
                                f"{self.descriptor or 'the descriptor'}")
            if not self.allow_control and has_control_block(path):
                raise TechError(f"technology {self.name}: model file {path} holds a .control block, which can run "
                                f"commands; remove it, or set allow_control: true in "
                                f"{self.descriptor or 'the descriptor'} if you trust the file")
        if self.subckts:
            from .modelsubset import subckt_names

            found = set().union(*(subckt_names(p) for p in self.model_files()))
            missing = [n for n in self.subckts if n.lower() not in found]
            if missing:
                raise TechError(f"technology {self.name}: no model file defines the subcircuit {missing[0]!r}; fix "
                                f"subckts in {self.descriptor or 'the descriptor'}")
        return self

    def with_corner(self, corner: str) -> "Technology":
        """The same technology at another process corner (sky130: tt ff ss sf fs)."""
        if corner not in self.corners:
            offered = ", ".join(self.corners) or "none"
            raise TechError(f"technology {self.name} has no corner {corner!r}; corners: {offered}")
        return Technology(**{**self.__dict__, "corner": corner}).check_files()

    def at_corner(self, corner: Corner) -> "Technology":
        """This technology at a PVT corner: its process section (when it names one; else the current), VDD and
        temperature."""
        tech = self
        if corner.process is not None and corner.process != self.corner:
            tech = self.with_corner(corner.process)
        return Technology(**{**tech.__dict__, "vdd_v": corner.vdd_v, "temp_c": corner.temp_c})

    def corner_set(self, text: str) -> tuple[Corner, ...]:
        """Corners by set name (`all`) or a comma-separated list of set and corner names (`nominal,tt_1.32V_125C`)."""
        found: list[Corner] = []
        for item in (part.strip() for part in str(text).split(",")):
            if item in self.corner_sets:
                found += self.corner_sets[item]
                continue
            try:
                found.append(Corner.from_name(item, self.corners))
            except CornerError as err:
                sets = ", ".join(self.corner_sets)
                example = self.corner_sets["nominal"][0].name
                detail = err.message if "_" in item and "V_" in item else f"{item[:40]!r} is neither a set nor a corner"
                raise CornerError(f"{detail}; {self.name}'s corner sets: {sets}, or corners such as {example}") \
                    from err
        unique = list({c.name: c for c in found}.values())
        if not unique:
            raise CornerError(f"no corners given; {self.name}'s corner sets: {', '.join(self.corner_sets)}")
        return tuple(unique)

    def at_conditions(self, vdd_v: float | None = None, cl_f: float | None = None) -> "Technology":
        """This technology at another supply and/or load (None keeps its own). Its corner sets move with the supply:
        each corner's VDD is scaled by vdd_v / self.vdd_v, so `all` stays +-10 % around the new supply."""
        vdd = self.vdd_v if vdd_v is None else float(vdd_v)
        ratio = vdd / self.vdd_v
        sets = self.corner_sets if ratio == 1 else {
            name: tuple(Corner.make(c.process, round(c.vdd_v * ratio, 4), c.temp_c) for c in corners)
            for name, corners in self.corner_sets.items()}
        return Technology(**{**self.__dict__, "vdd_v": vdd, "cl_f": self.cl_f if cl_f is None else float(cl_f),
                             "corner_sets": sets})

    def model_files(self) -> list[Path]:
        """Every file the deck loads: the model file and the includes (at the current corner)."""
        files = [Path(inc.format(corner=self.corner or "")) for inc in self.includes]
        return files if files else [self.model_file]

    def provenance(self) -> dict[str, Any]:
        """The technology as a dataset's or a run's meta.json records it: name, the descriptor and model files by a
        path relative to the repository or their package (`package:sky130/...`), each model file's sha256, and the
        values the deck is built from; no absolute path of this machine unless the file lives outside both."""
        return {
            "name": self.name, "description": self.description,
            "descriptor": portable_path(self.descriptor) if self.descriptor else None,
            "model_files": [{"path": portable_path(f), "sha256": file_sha256(f)} for f in self.model_files()],
            "nmos": self.nmos, "pmos": self.pmos, "vdd_v": self.vdd_v, "cl_f": self.cl_f,
            "corner": self.corner, "corners": list(self.corners), "subcircuit": self.subcircuit,
            "length_unit_m": self.length_unit_m, "params": dict(self.params),
            "bounds": {k: list(self.bounds[k]) for k in DESIGN_KEYS},
            **({"subckts": list(self.subckts)} if self.subckts else {}),
        }

    def model_lines(self) -> list[str]:
        """The deck lines that load the models: .param + .include list, `.lib FILE CORNER`, or `.include FILE`."""
        if self.includes:
            lines = [f".param {k}={v:g}" for k, v in self.params.items()]
            return lines + [f".include '{self._loaded(Path(inc.format(corner=self.corner or '')))}'"
                            for inc in self.includes]
        if self.corner:
            return [f".lib '{self.model_file}' {self.corner}"]
        return [f".include '{self.model_file}'"]

    def _loaded(self, path: Path) -> Path:
        """The file a deck includes for model file `path`: its `subckts` subset when the descriptor names some."""
        if not self.subckts:
            return path
        from .modelsubset import subset_file

        return subset_file(path, self.subckts, file_sha256(path))

    def out_of_bounds(self, design: Design) -> list[str]:
        """One message per variable outside this technology's bounds."""
        problems = []
        for key, value in design.to_dict().items():
            low, high = self.bounds[key]
            if not (low <= value <= high):
                problems.append(f"{key}={value:g} is outside {self.name}'s range [{low:g}, {high:g}]")
        return problems

    def to_dict(self) -> dict[str, Any]:
        """The descriptor as `icgen tech show --json` prints it, paths absolute."""
        return {
            "name": self.name, "description": self.description, "model_file": str(self.model_file),
            "nmos": self.nmos, "pmos": self.pmos, "vdd_v": self.vdd_v, "cl_f": self.cl_f,
            "corner": self.corner, "corners": list(self.corners), "subcircuit": self.subcircuit,
            "length_unit_m": self.length_unit_m, "includes": list(self.includes), "params": dict(self.params),
            "subckts": list(self.subckts),
            "bounds": {k: list(self.bounds[k]) for k in DESIGN_KEYS},
            "descriptor": str(self.descriptor) if self.descriptor else None,
            "corner_sets": {k: [c.name for c in v] for k, v in self.corner_sets.items()},
            "temp_c": self.temp_c,
        }


@dataclass(frozen=True)
class Conditions:
    """The supply and load a design is simulated at when a user sets them (`--vdd`, `--cl`); None keeps the
    technology's. Datasets are simulated at the technology's own; every reported figure is at these."""

    vdd_v: float | None = None
    """Supply voltage, or None for the technology's."""
    cl_f: float | None = None
    """Load capacitance on VOUT, or None for the technology's."""
    cl_range_f: tuple[float, float] = (1e-15, 1e-7)
    """Loads accepted: 1 fF (below it the devices' own capacitance is the load) to 100 nF."""
    vdd_ratio_range: tuple[float, float] = (0.5, 1.5)
    """Supplies accepted, as a fraction of the technology's VDD: beyond them its models and bias bounds do not hold."""

    def __post_init__(self) -> None:
        low, high = self.cl_range_f
        if self.cl_f is not None and not (math.isfinite(self.cl_f) and low <= self.cl_f <= high):
            raise ConfigError(f"{{cl}}: {format_si(self.cl_f, 'F', 3)} is not a load capacitance; use "
                              f"{format_si(low, 'F', 3)} to {format_si(high, 'F', 3)}, e.g. 2p")
        if self.vdd_v is not None and not (math.isfinite(self.vdd_v) and self.vdd_v > 0):
            raise ConfigError(f"{{vdd}}: {self.vdd_v:g} V is not a supply voltage; use a positive voltage, e.g. 1.1")

    @classmethod
    def from_text(cls, vdd: str | None = None, cl: str | None = None) -> "Conditions":
        """Read `--vdd 1.1` / `--vdd 1100mV` and `--cl 2p` / `--cl 2pF` with the project's unit parser."""
        values: dict[str, float] = {}
        for key, option, text, unit in (("vdd_v", "vdd", vdd, "V"), ("cl_f", "cl", cl, "F")):
            if text is None:
                continue
            try:
                values[key] = parse_quantity(text, unit)
            except UnitError as err:
                raise ConfigError(f"{{{option}}}: {err}") from err
        return cls(**values)

    @property
    def given(self) -> bool:
        return self.vdd_v is not None or self.cl_f is not None

    def apply(self, tech: Technology) -> Technology:
        """`tech` at these conditions, or a ConfigError when the supply is far from the technology's."""
        if self.vdd_v is not None:
            low, high = (r * tech.vdd_v for r in self.vdd_ratio_range)
            if not low <= self.vdd_v <= high:
                raise ConfigError(f"{{vdd}}: {self.vdd_v:g} V is too far from {tech.name}'s {tech.vdd_v:g} V supply; "
                                  f"use {low:.3g} to {high:.3g} V")
        return tech.at_conditions(self.vdd_v, self.cl_f) if self.given else tech


def conditions_of(tech: Technology) -> dict[str, float]:
    """The supply and load a run used, as its JSON output records them."""
    return {"vdd_v": tech.vdd_v, "cl_f": tech.cl_f}


_SHA256: dict[tuple[str, int, int], str] = {}


def technology_mismatch(recorded: dict, tech: Technology) -> str | None:
    """Why designs recorded as simulated on `recorded` (a `Technology.provenance()` record) are not `tech`'s, or None
    when they are: another name, or a model file both name (by portable path) whose sha256 differs. Files only one
    of them loads (another process corner's parameters) are not compared; a record without names is accepted."""
    name = recorded.get("name")
    if not name:
        return None
    if name != tech.name:
        return f"{name}, not {tech.name}"
    mine = {f["path"]: f["sha256"] for f in tech.provenance()["model_files"]}
    for entry in recorded.get("model_files") or []:
        path, digest = entry.get("path"), entry.get("sha256")
        if path in mine and digest and mine[path] != digest:
            return f"{name} with another {path} (sha256 {digest[:12]}, here {mine[path][:12]})"
    return None


def file_sha256(path: Path) -> str:
    """The sha256 of a file (cached by path, size and modification time: sky130's models are tens of MB)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _SHA256[key] = digest.hexdigest()
    return _SHA256[key]


def portable_path(path: Path | str) -> str:
    """A path as provenance records it: relative to the icgen package or the checkout (shipped files read the same
    either way, e.g. `spice/ptm65.lib`), `package:NAME/rel` inside another installed package, else absolute (a
    user's own file elsewhere)."""
    path = Path(path).resolve()
    if path.is_relative_to(PACKAGE_DIR):
        return path.relative_to(PACKAGE_DIR).as_posix()
    for i, part in enumerate(path.parts):
        if part in _PACKAGE_FOLDERS and i + 2 < len(path.parts):
            return "package:" + Path(*path.parts[i + 1:]).as_posix()
    if PACKAGE_DIR.parent.name not in _PACKAGE_FOLDERS and path.is_relative_to(PACKAGE_DIR.parent):
        return path.relative_to(PACKAGE_DIR.parent).as_posix()
    return str(path)


_PACKAGE_FOLDERS = ("site-packages", "dist-packages")


def resolve_portable_path(text: str) -> Path:
    """The file a `portable_path` names on this machine (relative ones against the repository, then the package)."""
    if text.startswith("package:"):
        return _resolve_model_file(text, PACKAGE_DIR)
    path = Path(text)
    if path.is_absolute():
        return path
    inside = PACKAGE_DIR.parent / path
    return inside if inside.exists() else PACKAGE_DIR / path


def builtin_names() -> list[str]:
    """Names of the technologies shipped in spice/."""
    return sorted(p.stem for p in spice_dir().glob("*.yaml"))


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _resolve_model_file(raw: str, base: Path) -> Path:
    """`model_file` may be relative to the descriptor, absolute, or `package:NAME/rel/path` inside a pip package."""
    if raw.startswith("package:"):
        package, _, rel = raw[len("package:"):].partition("/")
        root = _package_dir(package)
        if root is None:
            raise TechError(f"model file {raw}: Python package {package!r} is not installed; "
                            f"install it (pip install {package}) to use this technology")
        return (root / rel).resolve()
    path = Path(raw).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")
"""A name that is rendered into a deck (technology, model, corner, .param): letters, digits, _ . + -."""
_PARAMETER_TEMPLATE = re.compile(r"[@A-Za-z0-9_.\[\]{}]{1,80}")
_UNSAFE_PATH = re.compile(r"['\"\x00-\x1f\x7f]")
"""Characters a path may not hold: it is written inside quotes on a deck line."""
_CONTROL = re.compile(r"(?im)^[ \t]*\.(control|endc|exec)\b")
"""Deck blocks that run commands (a `.control` block can run `shell`)."""
_CONTROL_CHECKED: dict[tuple[str, int, int], bool] = {}


def _token(value: Any, what: str, where: Path) -> str:
    text = str(value)
    if not _TOKEN.fullmatch(text):
        raise TechError(f"{where}: {what} {text[:40]!r} is not a plain name; use letters, digits and _ . + - "
                        f"(at most 64), it is written into the deck")
    return text


def _safe_path(path: Path, where: Path) -> Path:
    if _UNSAFE_PATH.search(str(path)):
        raise TechError(f"{where}: the model path {str(path)!r} holds a quote or a control character; rename the "
                        f"file or link to it from a plain path")
    return path


def has_control_block(path: Path) -> bool:
    """Whether a model file holds a `.control`/`.exec` block (cached by path, size and modification time)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _CONTROL_CHECKED:
        with open(path, errors="replace") as fh:
            _CONTROL_CHECKED[key] = any(_CONTROL.match(line) for line in fh)
    return _CONTROL_CHECKED[key]


def _as_float(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise TechError(f"{where}: {value!r} is not a number") from err


def load_technology(name_or_path: str | Path = DEFAULT_TECH, corner: str | None = None) -> Technology:
    """Load a built-in technology by name or a user's descriptor by path."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        path = spice_dir() / f"{text}.yaml"
        if not path.is_file():
            raise TechError(f"unknown technology {text!r}; built in: {', '.join(builtin_names())}, "
                            f"or pass the path of a descriptor YAML file")
    if not path.is_file():
        raise TechError(f"technology descriptor {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise TechError(f"technology descriptor {path} is not valid YAML: {err}".splitlines()[0]) from err
    if not isinstance(raw, dict):
        raise TechError(f"technology descriptor {path} must be a mapping of keys to values")
    required = ("name", "model_file", "nmos", "pmos", "vdd_v", "cl_f", "bounds")
    missing = [k for k in required if k not in raw]
    if missing:
        raise TechError(f"technology descriptor {path} lacks {', '.join(missing)}; required: {', '.join(required)}")
    bounds_raw = raw["bounds"]
    if not isinstance(bounds_raw, dict):
        raise TechError(f"{path}: bounds must map each design variable to [low, high]")
    bounds: dict[str, tuple[float, float]] = {}
    for key, pair in bounds_raw.items():
        if key not in DESIGN_KEYS:
            raise TechError(f"{path}: bounds has unknown variable {key!r}; use {' '.join(DESIGN_KEYS)}")
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise TechError(f"{path}: bounds of {key} must be [low, high]")
        bounds[key] = (_as_float(pair[0], f"{path}: {key} low"), _as_float(pair[1], f"{path}: {key} high"))
    known = {"name", "description", "model_file", "nmos", "pmos", "vdd_v", "cl_f", "bounds", "corner", "corners",
             "subcircuit", "length_unit_m", "device_parameter", "includes", "params", "allow_control", "corner_sets",
             "subckts"}
    includes = raw.get("includes") or []
    params = raw.get("params") or {}
    if not isinstance(includes, list) or not isinstance(params, dict):
        raise TechError(f"{path}: includes must be a list of files and params a mapping of name to number")
    subckts = raw.get("subckts") or []
    if not isinstance(subckts, list) or not includes and subckts:
        raise TechError(f"{path}: subckts must be a list of subcircuit names, and needs includes (the files they "
                        f"are read from)")
    name = _token(raw["name"], "name", path)
    model_file = _safe_path(_resolve_model_file(str(raw["model_file"]), path.parent), path)
    if not model_file.is_file():  # before the values, as the first thing a user of a new descriptor gets wrong
        raise TechError(f"technology {name}: model file {model_file} does not exist; fix model_file in {path}")
    corners = tuple(_token(c, "corner", path) for c in (raw.get("corners", ()) or ()))
    device_parameter = str(raw.get("device_parameter", "@{instance}[{parameter}]"))
    if not _PARAMETER_TEMPLATE.fullmatch(device_parameter) or "{parameter}" not in device_parameter:
        raise TechError(f"{path}: device_parameter {device_parameter[:40]!r} must look like @{{instance}}[{{parameter}}]")
    default_corner = None if raw.get("corner") is None else _token(raw["corner"], "corner", path)
    vdd_v = _as_float(raw["vdd_v"], f"{path}: vdd_v")
    try:
        corner_sets = parse_corner_sets(raw.get("corner_sets"), corners, default_corner, vdd_v, f"{path}: corner_sets")
    except CornerError as err:
        raise TechError(err.message) from err
    tech = Technology(
        name=name,
        description=" ".join(str(raw.get("description", "")).split()),
        model_file=model_file,
        nmos=_token(raw["nmos"], "nmos", path), pmos=_token(raw["pmos"], "pmos", path),
        vdd_v=vdd_v, cl_f=_as_float(raw["cl_f"], f"{path}: cl_f"),
        bounds=bounds,
        corner=default_corner, corners=corners, corner_sets=corner_sets,
        subcircuit=bool(raw.get("subcircuit", False)),
        length_unit_m=_as_float(raw.get("length_unit_m", 1.0), f"{path}: length_unit_m"),
        device_parameter=device_parameter,
        includes=tuple(str(_safe_path(_resolve_model_file(str(inc), path.parent), path)) for inc in includes),
        params={_token(k, "params name", path): _as_float(v, f"{path}: params.{k}") for k, v in params.items()},
        subckts=tuple(_token(n, "subckts name", path) for n in subckts),
        descriptor=path.resolve(),
        extra={k: v for k, v in raw.items() if k not in known},
        allow_control=raw.get("allow_control", False) is True,
    )
    return tech.with_corner(corner) if corner else tech.check_files()
