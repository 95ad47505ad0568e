"""The `icgen` command line: each command parses its options, calls one stage function, and prints.

    icgen simulate [DESIGN] [--L1 622n ...] [--json] [--plot bode.png]
    icgen size --gain 38dB --pm 52
    icgen eval | icgen train | icgen data generate|split|export|stats|augment

Defaults come from the stage config dataclasses; the core's domain errors (IcgenError) become one-line messages
with exit code 2, their fields named by option (`--gain`).
"""
from __future__ import annotations

import errno
import json
import os
import sys
import time
from pathlib import Path

import click

from . import __version__
from .core.corner import BIASES
from .core.deck import TESTBENCHES, render_answer
from .core.design import DESIGN_KEYS, EXAMPLE_DESIGN, METRIC_KEYS, METRIC_LABELS, METRIC_UNITS, VARIABLE_BY_KEY
from .core.errors import SPEC_OPTIONS, IcgenError
from .core.objective import OBJECTIVE_NAMES, parse_margin
from .core.parse import MAX_ANSWER_BYTES, ParsedAnswer, Problem, parse_design_text, read_design_file
from .core.paths import DEFAULT_DATA_DIR, DEFAULT_MODEL_DIR
from .core.sampling import Radius
from .core.score import SPEC_HELP, SPEC_KINDS, format_margin, format_spec
from .core.tech import DEFAULT_TECH, Conditions, builtin_names, conditions_of, load_technology
from .core.units import UnitError, format_si, parse_quantity
from .data.config import SPLIT_KINDS, SPLIT_NAMES, DatasetError, GenerateConfig
from .eval.config import CORNER_TARGETS, EvalConfig
from .llm.model import ModelError
from .llm.pairs import FORMATS as PAIR_FORMATS
from .sim.corners import CornerSignoffConfig
from .sim.montecarlo import MonteCarloConfig, YieldTarget
from .sizing.config import CornerSizeConfig, SizeConfig

EXIT_OK = 0
"""The command did what was asked (specs met, netlist valid, simulation ran)."""
EXIT_CHECK_FAILED = 1
"""The command ran, but its check failed: specs not met, an invalid netlist, a failed simulation."""
EXIT_BAD_INPUT = 2
"""Bad input (options, files, folders): one line on stderr, nothing run."""
EXIT_INTERRUPTED = 130
"""Ctrl-C; finished work is kept and the same command resumes."""


class UserError(click.ClickException):
    """A one-line error for bad input: exit code 2, no traceback."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file=None) -> None:
        click.echo(f"icgen: error: {self.format_message()}", err=True)


_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC}


class IcgenGroup(click.Group):
    """Turns the core's domain errors into the one-line message a user sees (exit code 2)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except IcgenError as err:
            raise UserError(err.render().splitlines()[0]) from err
        except BrokenPipeError:  # the reader went away (`icgen ... | head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_OK)
        except OSError as err:  # a folder that is read-only, full or missing: say which, in one line
            where = f"{err.filename}: " if err.filename else ""
            hint = "; choose a folder you can write to (e.g. --out)" if err.errno in _NOT_WRITABLE else ""
            raise UserError(f"{where}{err.strerror or err}{hint}") from err


def _read_stdin() -> ParsedAnswer:
    """An answer or a JSON design from standard input, read no further than the parser's size limit."""
    return parse_design_text(sys.stdin.read(MAX_ANSWER_BYTES + 1))


def _tech(tech: str, corner: str | None):
    return load_technology(tech, corner=corner)


def _conditions_options(func):
    """--vdd and --cl: the supply and load every reported figure is simulated at (default: the technology's)."""
    func = click.option("--cl", "cl_text", default=None, metavar="CAPACITANCE",
                        help="Load capacitance on VOUT, e.g. 2p (default: the technology's, 1p for ptm65).")(func)
    func = click.option("--vdd", "vdd_text", default=None, metavar="VOLTS",
                        help="Supply voltage, e.g. 1.1 (default: the technology's; corner sets scale with it).")(func)
    return func


def _at_conditions(technology, vdd_text: str | None, cl_text: str | None):
    """The technology at the user's --vdd and --cl (a ConfigError, exit 2, for a bad value)."""
    return Conditions.from_text(vdd_text, cl_text).apply(technology)


def _variable_options(func):
    for key in reversed(DESIGN_KEYS):
        v = VARIABLE_BY_KEY[key]
        func = click.option(f"--{key}", key, default=None, metavar="VALUE",
                            help=f"{v.meaning} ({v.unit}; SPICE suffixes ok, e.g. 622n)")(func)
    return func


def _common_sim_options(func):
    func = click.option("--corner", default=None,
                        help="Process corner of technologies that have them (sky130: tt ff ss sf fs).")(func)
    func = click.option("--tech", "tech", default="ptm65", show_default=True,
                        help="Built-in technology name or path of a descriptor YAML.")(func)
    func = click.option("--testbench", type=click.Choice(TESTBENCHES), default="feedback", show_default=True,
                        help="feedback: DC loop closed through a huge inductor (default); fixed: both inputs at VIN.")(func)
    return func


def _problems_line(problems: list[Problem]) -> str:
    return "; ".join(str(p) for p in problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")


def _metrics_table(result) -> str:
    lines = [f"{'metric':<22} {'value':>14}"]
    m = result.metrics
    for key in METRIC_KEYS:
        value = getattr(m, key) if m else None
        lines.append(f"{METRIC_LABELS[key]:<22} {format_si(value, METRIC_UNITS[key]):>14}")
    return "\n".join(lines)


def _health_table(health) -> str:
    if health is None:
        return "operating point: not available"
    lines = [f"operating point: VOUT = {health.vout_v * 1e3:.0f} mV of VDD = {health.vdd_v:g} V",
             f"{'device':<7} {'region':<22} {'Vgs':>8} {'Vth':>8} {'Vds':>8} {'Vdsat':>8} {'margin':>8} {'Id':>10}"]
    for d in health.devices:
        region = {"saturation": "saturation", "subthreshold": "saturation, weak inv."}.get(d.region, d.region)
        lines.append(f"{d.name:<7} {region:<22} {d.vgs_v * 1e3:7.0f}m {d.vth_v * 1e3:7.0f}m {d.vds_v * 1e3:7.0f}m "
                     f"{d.vdsat_v * 1e3:7.0f}m {d.saturation_margin_v * 1e3:7.0f}m {format_si(d.id_a, 'A', 3):>10}")
    healthy = "none (healthy: output biased, all devices saturated)"
    lines.append("flags: " + ("; ".join(health.flags) if health.flags else healthy))
    if any(d.region == "subthreshold" for d in health.devices):
        lines.append("(weak inv.: Vgs < Vth, and saturated because Vds > Vdsat)")
    return "\n".join(lines)


def _signoff_table(s) -> str:
    """The sign-off block: what a designer checks beyond the open-loop sweep (icgen.core.signoff's conventions)."""
    def si(value, unit, digits=4):
        return format_si(value, unit, digits)

    def pct(value):
        return "—" if value is None else f"{value:.1f} %"

    def vus(value):
        return "—" if value is None else f"{value / 1e6:.3g} V/µs"

    rows = [
        ("unity-gain buffer bandwidth", si(s.buffer_bw_hz, "Hz") + (f", peaking {s.buffer_peaking_db:.1f} dB"
                                                                     if s.buffer_peaking_db is not None else "")),
        ("settling 1 % / 0.1 % (10 mV step)", f"{si(s.settling_1pct_s, 's')} / {si(s.settling_01pct_s, 's')}, "
                                               f"overshoot {pct(s.overshoot_pct)}"),
        ("slew rate rise / fall", f"{vus(s.slew_rise_v_per_s)} / {vus(s.slew_fall_v_per_s)}"),
        ("CMRR", si(s.cmrr_db, "dB") + (f" (3 dB corner {si(s.cmrr_corner_hz, 'Hz')})" if s.cmrr_corner_hz else "")),
        ("PSRR+ / PSRR-", f"{si(s.psrr_plus_db, 'dB')} / {si(s.psrr_minus_db, 'dB')}"),
        ("input offset (systematic)", si(s.offset_v, "V")),
        ("input noise 1 kHz / 1 MHz", f"{si(s.noise_1khz_v_rthz, 'V')}/√Hz / {si(s.noise_1mhz_v_rthz, 'V')}/√Hz"),
        ("input noise, 1 Hz to UGB", si(s.noise_integrated_v, "V") + " rms"),
        ("output swing (all saturated)", f"{si(s.swing_low_v, 'V')} .. {si(s.swing_high_v, 'V')}"),
        ("area (devices + C0 + R0)", "—" if s.area_m2 is None else f"{s.area_m2 * 1e12:.1f} µm²"),
        ("GBW: A0·f3dB / gm1/2πC0", f"{si(s.gbw_a0_f3db_hz, 'Hz')} / {si(s.gbw_gm1_c0_hz, 'Hz')}"),
        ("second pole gm6/2πCL; zero", f"{si(s.p2_hz, 'Hz')}; {si(s.zero_hz, 'Hz')} ({s.zero_half_plane or '—'} "
                                        f"half-plane)"),
    ]
    lines = ["sign-off:"] + [f"  {name:<34} {value}" for name, value in rows]
    if s.ugb_shelf:
        lines.append("  UGB shelf: the open-loop UGB is above what the buffer delivers")
    lines += [f"  (not measured: {p})" for p in s.problems]
    return "\n".join(lines)


def spec_options(command):
    """One --option per spec of icgen.core.score (SPEC_OPTIONS and SPEC_HELP), passed on keyed by spec key."""
    for key in reversed(tuple(SPEC_OPTIONS)):
        command = click.option(f"--{SPEC_OPTIONS[key]}", key, default=None, help=SPEC_HELP[key])(command)
    return command


@click.group(cls=IcgenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="icgen")
def main() -> None:
    """icgen: size and verify a two-stage Miller op-amp with ngspice."""


def _design_argument(design_file: str | None):
    """The design a DESIGN_FILE argument names (JSON, an answer, or - for stdin); the example answer without one."""
    if not design_file:
        return EXAMPLE_DESIGN
    if design_file != "-" and not Path(design_file).is_file():
        raise UserError(f"{design_file}: no such file; give a JSON design or an answer in the original format")
    parsed = _read_stdin() if design_file == "-" else read_design_file(design_file)
    if parsed.problems or parsed.design is None:
        raise UserError(f"{design_file}: {_problems_line(parsed.problems)}")
    return parsed.design


@main.command()
@click.argument("design_file", required=False, type=click.Path(dir_okay=False))
@_variable_options
@_common_sim_options
@click.option("--backend", type=click.Choice(["shared", "batch"]), default="shared", show_default=True,
              help="shared: libngspice through PySpice; batch: an ngspice -b subprocess.")
@click.option("--json", "as_json", is_flag=True, help="Print {design, metrics, status, health} as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Write a Bode plot (PNG).")
@click.option("--signoff", is_flag=True, help="Also run the sign-off benches: buffer, steps, CMRR, PSRR, noise, swing.")
@_conditions_options
def simulate(design_file, tech, corner, testbench, backend, as_json, plot_path, signoff, vdd_text, cl_text,
             **variables) -> None:
    """Simulate a design and print its metrics and operating-point health.

    DESIGN_FILE is JSON (SI keys R0 C0 L1 W1 ... VIN VB1) or an answer in the original format. Without it,
    the original work's example answer is simulated; --L1 622n etc. override single variables.
    """
    from .sim.simulate import simulate as run_simulation
    from .sim.validate import range_problems

    technology = _at_conditions(_tech(tech, corner), vdd_text, cl_text)
    design = _design_argument(design_file)
    overrides = {}
    for key, raw in variables.items():
        if raw is None:
            continue
        unit = VARIABLE_BY_KEY[key].answer_unit
        try:
            overrides[key] = parse_quantity(raw, unit)
        except UnitError as err:
            raise UserError(f"--{key}: {err}") from err
    design = design.replace(**overrides)
    problems = range_problems(design, technology)
    if problems:
        raise UserError(_problems_line(problems))
    if signoff and backend != "shared":
        raise UserError("--signoff runs on the shared backend; drop --backend batch")
    result = run_simulation(design, technology, testbench=testbench, backend=backend, signoff=signoff)
    if plot_path and result.frequency_hz is not None:
        from .sim.plot import plot_bode

        plot_bode(result, plot_path)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "conditions": conditions_of(technology)}, indent=2))
    else:
        click.echo(f"{technology.name} at VDD {technology.vdd_v:g} V, CL {format_si(technology.cl_f, 'F', 3)} "
                   f"({testbench} testbench, {backend} backend)\n")
        click.echo(render_answer(design) + "\n")
        click.echo(f"status: {result.status}" + (f" ({result.reason})" if result.reason else "") + "\n")
        click.echo(_metrics_table(result) + "\n")
        click.echo(_health_table(result.health))
        if result.signoff is not None:
            click.echo("\n" + _signoff_table(result.signoff))
        if plot_path and result.frequency_hz is not None:
            click.echo(f"\nBode plot: {plot_path}")
    if plot_path and result.frequency_hz is None:
        raise UserError(f"no AC sweep to plot: {result.status} ({result.reason})")
    if result.status == "failed":
        sys.exit(EXIT_CHECK_FAILED)


def _echo_report(report, valid_says: str) -> None:
    """A validation report: its problems, the parsed design re-rendered, its simulation, and VALID when it is."""
    if report.problems:
        click.echo(f"INVALID: {len(report.problems)} problem(s)")
        for p in report.problems:
            click.echo(f"  - {p}")
    if report.design is not None:
        click.echo("\nparsed design (re-rendered from typed values):\n" + render_answer(report.design))
    if report.result is not None:
        click.echo(f"\nstatus: {report.result.status}" + (f" ({report.result.reason})" if report.result.reason else ""))
        click.echo(_metrics_table(report.result) + "\n")
        click.echo(_health_table(report.result.health))
    if report.valid:
        click.echo("\nVALID: " + valid_says)


@main.command()
@click.argument("answer_file", type=click.Path(dir_okay=False, allow_dash=True))
@_common_sim_options
@click.option("--no-simulate", is_flag=True, help="Check parsing, topology, units and ranges only.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(answer_file, tech, corner, testbench, no_simulate, as_json) -> None:
    """Validate an answer (a model's or a person's netlist) and simulate it; exit 1 when invalid."""
    from .sim.validate import validate_parsed

    technology = _tech(tech, corner)
    if answer_file == "-":
        parsed: ParsedAnswer = _read_stdin()
    elif not Path(answer_file).is_file():
        raise UserError(f"{answer_file}: no such file")
    else:
        parsed = read_design_file(answer_file)
    report = validate_parsed(parsed, technology, testbench, run_simulation=not no_simulate)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(f"validation report for {answer_file} on {technology.name} ({testbench} testbench)")
        _echo_report(report, "the netlist matches the template, is in range, and simulates as an amplifier with a "
                             "healthy operating point")
    ok = report.valid or (no_simulate and not report.problems and report.design)
    sys.exit(EXIT_OK if ok else EXIT_CHECK_FAILED)


@main.group()
def tech() -> None:
    """Technologies: built-in ones and user descriptors."""


@tech.command("list")
def tech_list() -> None:
    """List the built-in technologies."""
    for name in builtin_names():
        try:
            t = load_technology(name)
            click.echo(f"{name:<10} VDD {t.vdd_v:g} V, CL {format_si(t.cl_f, 'F', 3)}: {t.description}")
        except IcgenError as err:
            click.echo(f"{name:<10} unavailable: {err}")


@tech.command("show")
@click.argument("name")
@click.option("--corner", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the descriptor as JSON with absolute paths.")
def tech_show(name, corner, as_json) -> None:
    """Show a technology's descriptor (model file, models, VDD, load, bounds)."""
    t = _tech(name, corner)
    data = t.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key != "bounds":
            click.echo(f"{key:<14} {value}")
    click.echo("bounds:")
    for key, (low, high) in data["bounds"].items():
        unit = VARIABLE_BY_KEY[key].unit
        click.echo(f"  {key:<4} {format_si(low, unit, 3)} .. {format_si(high, unit, 3)}")


@main.group()
def data() -> None:
    """The simulated dataset: generate, split, export pairs, stats, augment."""


def _dataset(data_dir, splits: bool = True):
    from .data.dataset import Dataset

    return Dataset(data_dir).require(splits=splits)


def _yield_record(found) -> dict:
    """The JSON of a --mc sizing's Monte Carlo check of the best design (None figures when it was not run)."""
    target, mc = found.yield_target, found.monte_carlo
    record = {"samples": target.samples.samples, "seed": target.samples.seed, "min_yield": target.min_yield}
    if mc is None:
        return {**record, "run": False, "passed": None, "lower_95": None}
    return {**record, "run": True, "passed": sum(mc.passed), "yield": mc.yield_fraction, "lower_95": mc.wilson[0],
            "met": mc.wilson[0] >= target.min_yield}


def _require_same_technology(data_dir, technology, tech_option: str) -> None:
    """Refuse a dataset simulated on another technology: its designs and surrogate would be retrieved as if they held."""
    from .data.dataset import Dataset

    try:
        recorded = Dataset(data_dir).require().technology_name
    except DatasetError as err:
        raise UserError(f"--data: {err}; or pass --data none (no retrieval)") from err
    if recorded is not None and recorded != technology.name:
        stem = Path(tech_option).stem
        raise UserError(f"--data {data_dir} was simulated on {recorded}, not {technology.name}; make a matching one "
                        f"with icgen data generate --tech {tech_option} --out data/{stem} && icgen data split --data "
                        f"data/{stem}, then pass --data data/{stem}; or pass --data none to start from the model's "
                        f"answers alone (it was trained on {recorded} designs)")


def _require_model_technology(model_dir, technology, tech_option: str) -> None:
    """Refuse a fine-tuned model trained on designs of another technology (by name and model-file sha256)."""
    from .core.tech import technology_mismatch
    from .llm.model import ModelError, model_technology

    if model_dir in (None, "none", ""):
        return
    try:
        why = technology_mismatch(model_technology(model_dir), technology)
    except ModelError as err:
        raise UserError(f"--model: {err}; or pass --model none") from err
    if why is not None:
        stem = Path(tech_option).stem
        raise UserError(f"--model {model_dir} was trained on designs simulated on {why}; train one on a {stem} "
                        f"dataset (icgen train --set data=data/{stem} --set name=my-{stem}-model), or pass --model none")


def _scheduler_option(func):
    return click.option("--scheduler", default=None, metavar="tcp://HOST:PORT|local:N",
                        help="Simulate on a Dask cluster (default: $ICGEN_SCHEDULER, else this machine's pool).")(func)


@data.command("generate")
@click.option("--tech", "tech", default=GenerateConfig.tech, show_default=True, help="Technology name or descriptor path.")
@click.option("--n-working", type=int, default=GenerateConfig.n_working, show_default=True,
              help="Working designs to reach.")
@click.option("--seed", type=int, default=GenerateConfig.seed, show_default=True, help="Sobol scrambling seed.")
@click.option("--workers", type=int, default=None, help="Simulation processes (default: all cores).")
@click.option("--testbench", type=click.Choice(TESTBENCHES), default=GenerateConfig.testbench, show_default=True)
@click.option("--chunk", type=int, default=GenerateConfig.chunk, show_default=True, help="Designs per resumable part.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default data/TECH, relative to the current folder).")
@_scheduler_option
def data_generate(tech, n_working, seed, workers, testbench, chunk, out_dir, scheduler) -> None:
    """Sample and simulate designs until N working ones; kill it any time and re-run to resume."""
    from tqdm import tqdm

    from .data.generate import build_dataset

    _tech(tech, None)
    config = GenerateConfig(tech=tech, n_working=n_working, seed=seed, testbench=testbench, chunk=chunk)
    out = Path(out_dir or Path("data") / Path(tech).stem)
    bar = tqdm(total=n_working, unit="working", desc=f"generate {Path(tech).stem}", dynamic_ncols=True,
               disable=None)

    def progress(simulated: int, working: int, wanted: int) -> None:
        if simulated % 64 and working < wanted:
            return
        bar.n = min(working, wanted)
        bar.set_postfix(simulated=simulated, yield_=f"{working / max(simulated, 1):.0%}", refresh=False)
        bar.update(0)

    try:
        dataset = build_dataset(config, out, workers=workers, progress=progress, scheduler=scheduler)
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"\ninterrupted: finished parts are kept in {out}; run the same command to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except RuntimeError as err:
        bar.close()
        raise UserError(str(err)) from err
    bar.close()
    meta = dataset.meta
    c = meta["counts"]
    click.echo(f"{dataset.table_path}: {c['simulated']} designs simulated: {c['working']} working "
               f"({meta['yield_working']:.1%}: amplifier with a healthy operating point), {c['ok']} amplifiers "
               f"({meta['yield_ok']:.1%}), {c['not_amplifier']} not amplifiers, {c['failed']} failed; "
               f"{meta['wall_s']:.0f} s over {meta['sessions']} session(s)")


@data.command("split")
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True, type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite existing splits (they are meant to be written once).")
def data_split(data_dir, seed, force) -> None:
    """Write train/validation/test splits (random, and held out by metric-space clusters) beside the data."""
    from .data.splits import write_splits

    counts = write_splits(_dataset(data_dir, splits=False), seed=seed, force=force)
    for kind, by_split in counts.items():
        click.echo(f"{kind:<8} " + ", ".join(f"{name} {n}" for name, n in by_split.items()))
    click.echo(f"wrote {_dataset(data_dir).splits_path}")


@data.command("export")
@click.option("--format", "fmt", type=click.Choice(PAIR_FORMATS), default="compact", show_default=True)
@click.option("--split", type=click.Choice(SPLIT_NAMES), default="train", show_default=True)
@click.option("--kind", type=click.Choice(SPLIT_KINDS), default="heldout", show_default=True,
              help="heldout: test = whole metric-space clusters; random: rows drawn at random.")
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True, type=click.Path(file_okay=False))
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None, help="JSONL file (default stdout).")
@click.option("--tokens", is_flag=True, help="Also count tokens per pair with the default model's tokenizer.")
def data_export(fmt, split, kind, data_dir, out_file, tokens) -> None:
    """Export prompt/completion (or chat) JSONL pairs for one split."""
    from .llm.edits import dataset_pairs
    from .llm.pairs import pair_token_counts

    pairs = dataset_pairs(_dataset(data_dir), fmt, split, kind)
    lines = "".join(json.dumps(p) + "\n" for p in pairs)
    if out_file:
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        Path(out_file).write_text(lines)
        click.echo(f"wrote {len(pairs)} {fmt} pairs ({kind} {split}) to {out_file}", err=True)
    else:
        click.echo(lines, nl=False)
    if tokens:
        import numpy as np

        from .llm.model import load_tokenizer

        counts = np.array(pair_token_counts(pairs, load_tokenizer()))
        click.echo(f"tokens per pair ({fmt}): mean {counts.mean():.1f}, median {np.median(counts):.0f}, "
                   f"max {counts.max()}, total {counts.sum()}", err=True)


@data.command("fixes")
@click.option("--split", type=click.Choice(SPLIT_NAMES), default="train", show_default=True)
@click.option("--kind", type=click.Choice(SPLIT_KINDS), default="heldout", show_default=True)
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True, type=click.Path(file_okay=False))
@click.option("--targets", "n_targets", type=click.IntRange(min=1), default=None,
              help="Draw for the first N targets of the split's seeded shuffle (default: all).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--moves", "moves_name", default="base", show_default=True,
              help="Move rules (icgen.llm.fixes.MOVE_SETS): base, or fine (finer steps, coupled W/L moves, paths of "
                   "up to 4 pairs from each start).")
def data_fixes(split, kind, data_dir, n_targets, seed, moves_name) -> None:
    """Draw fix-format pairs by simulation: every single move (and pairs of the best) around each retrieved start;
    cached in DATA/pairs/ and resumable (icgen.llm.fixes)."""
    from tqdm import tqdm

    from .llm.fixes import fix_pairs, move_set

    rules = move_set(moves_name, targets=n_targets)
    dataset = _dataset(data_dir)
    bar = tqdm(unit="target", desc=f"fix pairs {split}", dynamic_ncols=True, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()

    try:
        pairs, stats = fix_pairs(dataset, split, kind, seed, rules, progress=progress)
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"\ninterrupted: the targets drawn are kept in {dataset.folder / 'pairs'}; run the same command "
                   f"to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    bar.close()
    s = stats.to_dict()
    click.echo(f"{len(pairs)} fix pairs from {s['targets']} targets: {s['start_meets']} starts already met "
               f"({s['keep_pairs']} kept as keep), misses fixed by one move {s['single']}, by two {s['double']}, "
               f"improved {s['improves']}, unfixed {s['unfixed']}"
               + (f"; paths: {s['path_pairs']} later pairs, {s['path_met']} ending in a move that meets"
                  if rules.depth > 1 else "") + f"; {s['simulations']} simulations")


@data.command("preferences")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), required=True,
              help="The SFT run folder whose answers are sampled.")
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True, type=click.Path(file_okay=False))
@click.option("--kind", type=click.Choice(SPLIT_KINDS), default="heldout", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="A PreferenceConfig field: samples, temperature, targets, seed, max_new_tokens, chunk.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where to write the pairs (default MODEL/preferences).")
def data_preferences(model_dir, data_dir, kind, overrides, out_dir) -> None:
    """Sample K answers per training target, simulate and rank them: DPO and rejection-sampling pairs, resumable
    (icgen.llm.preferences)."""
    from tqdm import tqdm

    from .data.dataset import dataset_technology
    from .llm.dpo import PREFERENCES_DIR
    from .llm.model import load_finetuned, run_config
    from .llm.preferences import preference_config, preference_pairs
    from .sim.engines import open_pool

    config = preference_config(list(overrides))
    dataset = _dataset(data_dir)
    model, tokenizer = load_finetuned(model_dir)
    tech = dataset_technology(dataset)
    folder = out_dir or Path(model_dir) / PREFERENCES_DIR
    bar = tqdm(unit="target", desc="preference samples", dynamic_ncols=True, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()

    try:
        with open_pool() as pool:
            meta = preference_pairs(model, tokenizer, run_config(model_dir)["format"], dataset.training_rows(kind),
                                    tech, pool, folder, config, str(model_dir), progress=progress)
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"\ninterrupted: the targets sampled are kept in {folder}; run the same command to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    bar.close()
    click.echo(f"{meta['preference_pairs']} preference pairs and {meta['rft_pairs']} RFT pairs from "
               f"{meta['targets']} targets; {meta['simulations']} simulations, share met {meta['share_met']:.3f}")


@data.command("stats")
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True, type=click.Path(file_okay=False))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Default: DATA/stats.")
def data_stats(data_dir, out_dir) -> None:
    """Counts, yield, distributions, correlations: PNG figures and a markdown summary."""
    from .data.stats import counts, write_report

    dataset = _dataset(data_dir, splits=False)
    summary = write_report(dataset.table, out_dir or dataset.stats_dir, name=dataset.folder.name)
    c = counts(dataset.table)
    click.echo(f"{c['simulated']} simulated, {c['working']} working ({c['working'] / c['simulated']:.1%}), "
               f"{c['ok_but_unhealthy']} amplifiers with an unhealthy operating point, "
               f"{c.get('not_amplifier', 0)} not amplifiers, {c.get('failed', 0)} failed")
    click.echo(f"wrote {summary} and its figures")


@data.command("augment")
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True, type=click.Path(file_okay=False))
@click.option("--around", "around", type=click.Path(dir_okay=False), default=None,
              help="Designs to sweep around: JSON/JSONL designs, model generations, or an answer-format file.")
@click.option("--source", type=click.Choice(["user", "model", "sweep"]), default="user", show_default=True,
              help="What the --around designs are; they are simulated and added with this source (sweep: not added).")
@click.option("--fill-gaps", is_flag=True, help="Sweep around working designs in sparse cells of the metric space.")
@click.option("--max-centers", type=int, default=100, show_default=True, help="--fill-gaps: designs to sweep around.")
@click.option("--n", "n_per_center", type=int, default=32, show_default=True, help="Designs per centre.")
@click.option("--radius", type=float, default=Radius.relative, show_default=True,
              help="R0, C0, L, W within x/÷ (1 + radius) of the centre.")
@click.option("--radius-v", type=float, default=Radius.volts, show_default=True,
              help="VIN, VB1 within ± this many volts.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=None)
@_scheduler_option
def data_augment(data_dir, around, source, fill_gaps, max_centers, n_per_center, radius, radius_v, seed,
                 workers, scheduler) -> None:
    """Grow the dataset by simulation sweeps (resumable; nothing is added twice)."""
    from tqdm import tqdm

    from .data.augment import augment, read_centers, sparse_centers
    from .data.dataset import dataset_technology

    dataset = _dataset(data_dir, splits=False)
    if bool(around) == bool(fill_gaps):
        raise UserError("give exactly one of --around FILE or --fill-gaps")
    if n_per_center < 1:
        raise UserError("--n must be at least 1")
    try:
        sweep_radius = Radius(relative=radius, volts=radius_v)
    except IcgenError as err:
        raise UserError(err.render({"relative": "--radius", "volts": "--radius-v"}.get)) from err
    if around:
        if not Path(around).is_file():
            raise UserError(f"{around}: no such file")
        try:
            centers, kind = read_centers(around, dataset_technology(dataset)), "around"
        except ValueError as err:
            raise UserError(str(err)) from err
    else:
        centers, kind, source = sparse_centers(dataset.table, max_centers, seed), "fill-gaps", "sweep"
    bar = tqdm(total=len(centers) * (n_per_center + 1), unit="sim", desc=f"augment {kind}", dynamic_ncols=True,
               disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.update(0)

    try:
        result = augment(dataset, centers, source, n_per_center, sweep_radius, seed, kind, workers=workers,
                         progress=progress, scheduler=scheduler)
    except KeyboardInterrupt:
        bar.close()
        click.echo("\ninterrupted: finished parts are kept; run the same command to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    bar.close()
    b, a = result["coverage_before"], result["coverage_after"]
    click.echo(f"run {result['run']}: {result['candidates']} new candidates around {len(centers)} design(s); "
               f"added {result['added_rows']} rows, {result['added_working']} working")
    click.echo(f"metric-space coverage (gain 10 dB x UGB half-decade x PM 15 deg cells): covered {b['covered_cells']} "
               f"-> {a['covered_cells']}, sparse (<3 working) {b['sparse_cells']} -> {a['sparse_cells']}, "
               f"working designs {b['working']} -> {a['working']}")


@data.command("resimulate")
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True, type=click.Path(file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="The v2 dataset's folder.")
@click.option("--workers", type=int, default=None)
@_scheduler_option
def data_resimulate(data_dir, out_dir, workers, scheduler) -> None:
    """Dataset v2: simulate the working designs again with every sign-off bench and the stricter health rule."""
    from tqdm import tqdm

    from .data.resimulate import resimulate

    source = _dataset(data_dir)
    bar = tqdm(total=int(source.table["working"].sum()), unit="design", desc="resimulate", dynamic_ncols=True,
               disable=None)

    def progress(done: int, total: int) -> None:
        bar.n = done
        bar.update(0)

    try:
        target = resimulate(source, out_dir, workers=workers, scheduler=scheduler, progress=progress)
    except KeyboardInterrupt:
        bar.close()
        click.echo("\ninterrupted: finished parts are kept; run the same command to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    bar.close()
    c = target.meta["counts"]
    click.echo(f"{target.table_path}: {c['working_v2']} of {c['working_v1']} v1 working designs still working under "
               f"the v2 health rule ({c['stopped_working']} stopped); {c['simulated']} rows")


JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def _with_jemalloc() -> None:
    """Re-run this command with jemalloc preloaded on a CPU (measured faster and leaner for LoRA here)."""
    import os

    if os.environ.get("ICGEN_NO_JEMALLOC") or JEMALLOC in os.environ.get("LD_PRELOAD", "") or not Path(JEMALLOC).is_file():
        return
    try:
        import torch

        if torch.cuda.is_available():
            return
    except ImportError:
        return
    env = {**os.environ, "LD_PRELOAD": (os.environ.get("LD_PRELOAD", "") + " " + JEMALLOC).strip()}
    os.execve(sys.executable, [sys.executable, "-m", "icgen.cli", *sys.argv[1:]], env)


@main.command("train")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML config (default: icgen/configs/smollm2-135m-fix-fine.yaml, the embedded default).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--quant", type=click.Choice(["auto", "nf4", "none"]), default=None,
              help="nf4: QLoRA (CUDA); none: plain LoRA; auto: nf4 on CUDA, none on CPU.")
@click.option("--resume", is_flag=True, help="Continue from the run's last checkpoint.")
@click.option("--stage", type=click.Choice(["sft", "dpo", "rft"]), default=None,
              help="sft: fine-tune on pairs (default); dpo: preference-tune a run's adapter; rft: fine-tune it on its "
                   "own answers that met (or `stage:` in the config).")
@click.option("--from", "from_run", type=click.Path(file_okay=False), default=None,
              help="dpo/rft only: the SFT run folder to tune (for DPO the reference is that SFT model).")
def train_command(config_path, overrides, quant, resume, stage, from_run) -> None:
    """Fine-tune a Llama-family model with LoRA/QLoRA on the spec->sizing pairs (loss on completions only), or
    preference-tune a run with DPO on simulator-ranked answers (--stage dpo --from RUN)."""
    from .llm.dpo import config_stage, load_settings, train_dpo
    from .llm.rft import train_rft
    from .llm.train import load_config, train

    tuners = {"dpo": train_dpo, "rft": train_rft}  # the stages that continue an SFT run
    chosen = stage or config_stage(config_path)
    if chosen in tuners:
        settings = load_settings(config_path, list(overrides), from_run, stage=chosen)
        _with_jemalloc()
        metrics = tuners[chosen](settings)
        line = (f"reward margin {metrics['before']['margin']:.4f} -> {metrics['after']['margin']:.4f}"
                if chosen == "dpo" else f"{metrics['rft_pairs']} pairs")
        click.echo(f"{settings.out}: {metrics['steps']} {chosen.upper()} steps, loss {metrics['before']['loss']:.4f}"
                   f" -> {metrics['after']['loss']:.4f}, {line}")
        return
    config = load_config(config_path, list(overrides) + ([f"quant={quant}"] if quant else []))
    _with_jemalloc()
    try:
        metrics = train(config, resume=resume)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: checkpoints are in {config.out}; run again with --resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    click.echo(f"{config.out}: {metrics['steps']} steps, validation loss {metrics['base_validation_loss']:.4f} "
               f"({'init adapter' if config.init_adapter else 'untuned base'}) -> "
               f"{metrics['best_validation_loss']:.4f}; {metrics['wall_s'] / 60:.1f} min")


@main.command("merge")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=str(DEFAULT_MODEL_DIR),
              show_default=True, help="A run folder written by icgen train.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Where to write the merged model.")
def merge_command(model_dir, out_dir) -> None:
    """Write a merged model: the dequantised base with the LoRA adapter folded into its weights."""
    from .llm.model import merge_run

    out = merge_run(model_dir, out_dir)
    click.echo(f"wrote merged model to {out}")


@main.group("model")
def model_group() -> None:
    """Trained models."""


@model_group.command("info")
@click.argument("model_dir", required=False, type=click.Path(file_okay=False), default=str(DEFAULT_MODEL_DIR))
@click.option("--json", "as_json", is_flag=True)
def model_info_command(model_dir, as_json) -> None:
    """Base, adapter path, pair format and validation loss of a trained model (default: the embedded one)."""
    from .llm.model import model_info

    info = model_info(model_dir)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            click.echo(f"{key:<22} {value}")


def _model_dir(model_dir: str) -> str | None:
    return None if model_dir in ("none", "") else model_dir


@main.command("eval")
@click.option("--split", default=EvalConfig.split, show_default=True, help="Held-out split whose designs become targets.")
@click.option("--split-kind", default=EvalConfig.split_kind, show_default=True, type=click.Choice(SPLIT_KINDS))
@click.option("--n", "n_targets", type=int, default=EvalConfig.n, show_default=True, help="Held-out targets.")
@click.option("--budget", type=int, default=EvalConfig.budget,
              help=f"Simulations per target and method (default {SizeConfig.budget}; with --corners "
                   f"{CornerSizeConfig.budget_per_corner} x the corner count).")
@click.option("--corners", default=EvalConfig.corners,
              help="Judge every method at every corner of a set (all, nominal) or a comma-separated list of sets and "
                   "corners: met = met at every corner; the loop runs as icgen size --corners.")
@click.option("--corner-targets", type=click.Choice(CORNER_TARGETS), default=EvalConfig.corner_targets,
              show_default=True,
              help="With --corners: held-out targets from each design's worst-corner metrics (met at every corner by "
                   "the design they came from) or from its nominal ones.")
@click.option("--samples", type=int, default=EvalConfig.samples, show_default=True, help="N of best-of-N.")
@click.option("--loop-samples", type=int, default=EvalConfig.loop_samples, show_default=True,
              help="Model answers per round in the model-loop: the greedy one and N-1 sampled (N sampled when the "
                   "best candidate has not changed).")
@click.option("--loop-patience", type=int, default=EvalConfig.loop_patience, show_default=True,
              help="The model-loop stops after this many rounds in a row that bring no new design.")
@click.option("--methods", default=",".join(EvalConfig.methods), show_default=True)
@click.option("--no-hand", is_flag=True, help="Leave out the hand-written targets.")
@click.option("--objective", type=click.Choice(OBJECTIVE_NAMES), default=EvalConfig.objective, show_default=True,
              help="What the loop-based methods optimise once a target is met; adds each method's objective against "
                   "the best known to the report.")
@click.option("--drop", default="", help="Bounds left out of the held-out targets, e.g. power (Pareto-edge targets).")
@click.option("--targets", "targets_file", default=EvalConfig.targets, metavar="FILE.jsonl",
              help='Your own targets too: one JSON object a line in SI units, e.g. {"name": "a", "gain_db": 50, '
                   '"pm_deg": 60, "power_w": 2e-5} (add --n 0 --no-hand for yours only).')
@click.option("--model", "model_dir", default=str(DEFAULT_MODEL_DIR), show_default=True,
              help="A run folder from icgen train; 'none' for the baselines and the model-free loop.")
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True)
@click.option("--tech", "tech", default=DEFAULT_TECH, show_default=True)
@click.option("--seed", type=int, default=EvalConfig.seed, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/eval", show_default=True)
@click.option("--update-card", is_flag=True, help="Write the summary into the model folder's README.md.")
@_scheduler_option
def eval_command(split, split_kind, n_targets, budget, corners, corner_targets, samples, loop_samples, loop_patience,
                 methods, no_hand, objective, drop, targets_file, model_dir, data_dir, tech, seed, out_dir, update_card,
                 scheduler) -> None:
    """Compare the model, the sizing loop and baselines on held-out targets under one simulation budget.

    Writes OUT/report.md, eval.png, summary.csv, outcomes.csv/jsonl and meta.json; re-running with the same
    options resumes an interrupted run.
    """
    from tqdm import tqdm

    from .core.score import SPEC_KEY_BY_NAME
    from .eval.run import EvalRun, evaluate

    dropped = tuple(SPEC_KEY_BY_NAME.get(d.strip(), d.strip()) for d in drop.split(",") if d.strip())
    config = EvalConfig(split=split, split_kind=split_kind, n=n_targets, budget=budget, samples=samples, seed=seed,
                        loop_samples=loop_samples, loop_patience=loop_patience, objective=objective, drop=dropped,
                        methods=tuple(m.strip() for m in methods.split(",") if m.strip()), hand=not no_hand,
                        targets=targets_file, corners=corners, corner_targets=corner_targets)
    _require_model_technology(_model_dir(model_dir), _tech(tech, None), tech)
    try:
        done = evaluate(config, EvalRun(out_dir), _dataset(data_dir), _tech(tech, None), _model_dir(model_dir),
                        progress=tqdm, log=lambda m: click.echo(m, err=True), update_card=update_card,
                        scheduler=scheduler)
    except ModelError as err:
        raise UserError(f"--model: {err}; or pass --model none") from err
    click.echo(done["report"].read_text().split("## Provenance")[0])
    click.echo(f"report: {done['report']}")
    if done["card"]:
        click.echo(f"model card: {done['card']}")


def _objective_block(result, table, pareto_n: int, pareto_plot: str) -> None:
    """The objective's line (its value and how far from the best training design meeting the same specs), the
    degenerate-result warnings, and with --pareto the best trade-offs and their plot."""
    from .core.objective import objective
    from .sizing.tradeoffs import pareto_front, plot_pareto, summary, tradeoffs, values_in_natural_units

    goal = objective(result.objective)
    info = summary(result, table)
    if info["value"] is not None:
        line = f"\nobjective {goal.name}: {values_in_natural_units(goal, info['value'])}"
        if info["x_best_training"] is not None:
            line += (f", {info['x_best_training']:.3g}x the best training design meeting the same specs "
                     f"({values_in_natural_units(goal, info['best_training'])})")
        click.echo(line)
    for warning in info["warnings"]:
        click.echo(f"warning: {warning}")
    if pareto_n and result.met:
        points = tradeoffs(result, result.target_specs, goal)
        front = pareto_front(points)
        click.echo(f"\ntrade-offs found ({len(front)} non-dominated of {len(points)} feasible; best {pareto_n}):")
        click.echo(f"  {'objective':>14} {'worst margin':>13}  source")
        for point in front[:pareto_n]:
            click.echo(f"  {values_in_natural_units(goal, point.value):>14} {point.worst_margin:>13.3f}  {point.source}")
        if points:
            click.echo(f"  plot: {plot_pareto(points, pareto_plot, goal)}")


@main.command("ask")
@spec_options
@click.option("--start", "start_file", type=click.Path(dir_okay=False), default=None,
              help="Starting design for an edit-format model (JSON or an answer); default: retrieval's first.")
@click.option("--tech", "tech", default=DEFAULT_TECH, show_default=True)
@click.option("--model", "model_dir", default=str(DEFAULT_MODEL_DIR), show_default=True,
              help="A run folder from icgen train.")
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True,
              help="Dataset whose training split gives the start (and the prompt's reference metrics); 'none'.")
@click.option("--no-simulate", is_flag=True, help="Parse and check the answer only.")
def ask_command(start_file, tech, model_dir, data_dir, no_simulate, **spec_texts) -> None:
    """Ask the model once: the prompt, its raw answer (control characters escaped), and the answer's validation."""
    from .core.score import specs_from_options
    from .llm.model import load_finetuned, run_config
    from .sizing.ask import ask, escaped

    specs = specs_from_options(spec_texts)
    technology = _tech(tech, None)
    _require_model_technology(model_dir, technology, tech)
    start = None
    if start_file:
        if not Path(start_file).is_file():
            raise UserError(f"--start: {start_file}: no such file; give a JSON design or an answer")
        parsed = read_design_file(start_file)
        if parsed.problems or parsed.design is None:
            raise UserError(f"--start: {start_file}: {_problems_line(parsed.problems)}")
        start = (parsed.design, None)
    try:
        fmt = run_config(model_dir)["format"]
        model, tokenizer = load_finetuned(model_dir, merge=True)
    except ModelError as err:
        raise UserError(f"--model: {err}") from err
    table = None if data_dir == "none" else _dataset(data_dir).training_rows()
    asked = ask(specs, model, tokenizer, fmt, technology, table=table, start=start, simulate=not no_simulate)
    click.echo(f"prompt ({fmt} format; start: {asked.start_source}):\n{escaped(asked.prompt)}")
    click.echo(f"raw answer:\n{escaped(asked.answer)}\n")
    report = asked.report
    _echo_report(report, "the answer parses, is in range, and simulates as a healthy amplifier")
    sys.exit(EXIT_OK if report.valid or (no_simulate and not report.problems and report.design) else
             EXIT_CHECK_FAILED)


@main.command("size")
@spec_options
@click.option("--tech", "tech", default=DEFAULT_TECH, show_default=True)
@click.option("--model", "model_dir", default=str(DEFAULT_MODEL_DIR), show_default=True,
              help="A run folder from icgen train; 'none' for retrieval and local search only.")
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True,
              help="Dataset whose training split is searched for similar designs.")
@click.option("--samples", type=int, default=SizeConfig.samples, show_default=True,
              help="Model candidates per batched generate (asked when the steps before it miss).")
@click.option("--budget", type=int, default=None,
              help=f"Most simulations to spend (default {SizeConfig.budget}; with --corners "
                   f"{CornerSizeConfig.budget_per_corner} x the corner count).")
@click.option("--corners", default=None,
              help="Meet the specs at every corner of a set (all, nominal) or a comma-separated list of sets and "
                   "corners; each candidate is scored by its worst corner.")
@click.option("--bias", type=click.Choice(BIASES), default=None,
              help=f"With --corners: how VB1 follows a corner's supply: track-vdd keeps VDD - VB1, fixed holds VB1; "
                   f"VIN never moves (default {CornerSizeConfig.bias}).")
@click.option("--model-first", is_flag=True,
              help="Ask the model right after retrieval, before the surrogate steps (slower; measured no better).")
@click.option("--seed", type=int, default=SizeConfig.seed, show_default=True)
@click.option("--objective", type=click.Choice(OBJECTIVE_NAMES), default=SizeConfig.objective, show_default=True,
              help="What to optimise once the specs are met; max-margin stops at the first design that meets them.")
@click.option("--margin", "margin_text", default=SizeConfig.margin.text(), show_default=True,
              help="How far inside every bound a reported design stays (dB, degrees, % for the rest); 0 for none.")
@click.option("--pareto", "pareto_n", type=int, default=0,
              help="Also print the N best trade-offs found (objective against worst margin) and plot them.")
@click.option("--pareto-plot", type=click.Path(dir_okay=False), default="pareto.png", show_default=True,
              help="Where --pareto writes its plot.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Bode plot of the result (PNG).")
@click.option("--subckt", "subckt_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the design as a .subckt (VINP VINN VOUT VDD VSS) for your own flow.")
@click.option("--mc", "mc_samples", type=int, default=None,
              help=f"Monte Carlo mismatch samples on every candidate that passes every corner (default corners: "
                   f"nominal); it meets the specs only with the --yield (default {YieldTarget.min_yield:g}) reached.")
@click.option("--yield", "min_yield", type=float, default=None,
              help="Lowest acceptable yield: the lower Wilson 95 % bound of the share of --mc samples meeting every "
                   "spec.")
@_conditions_options
def size_command(tech, model_dir, data_dir, samples, budget, corners, bias, model_first, seed, objective, margin_text,
                 pareto_n, pareto_plot, as_json, plot_path, subckt_path, mc_samples, min_yield, vdd_text, cl_text,
                 **spec_texts) -> None:
    """Size the op-amp for the given specs; every reported design is verified by simulation."""
    from .core.score import specs_from_options
    from .sizing.config import MODEL_FIRST_STEPS
    from .sizing.loop import size, spec_table
    from .sizing.resources import SizingResources

    started = time.perf_counter()
    specs = specs_from_options(spec_texts)
    budget_given = budget
    if pareto_n < 0:
        raise UserError(f"--pareto {pareto_n}: give a number of trade-offs, 1 or more (0: none)")
    technology = _at_conditions(_tech(tech, None), vdd_text, cl_text)  # the dataset stays at the technology's own
    if data_dir != "none":
        _require_same_technology(data_dir, technology, tech)
    _require_model_technology(model_dir, technology, tech)
    if min_yield is not None and mc_samples is None:
        raise UserError("--yield needs --mc N, the Monte Carlo samples it is measured on")
    target = None
    if mc_samples is not None:
        target = YieldTarget(samples=MonteCarloConfig(samples=mc_samples, seed=seed),
                             **({"min_yield": min_yield} if min_yield is not None else {}))
        corners = corners or "nominal"
    if bias is not None and corners is None:
        raise UserError(f"--bias {bias} sets how VB1 follows a corner's supply; add --corners SET (such as all)")
    chosen = technology.corner_set(corners) if corners is not None else None
    budget = CornerSizeConfig().budget(budget, len(chosen)) if chosen else \
        (SizeConfig.budget if budget is None else budget)
    if target is not None and budget_given is None:
        budget = target.budget(budget)
    config = SizeConfig(samples=samples, budget=budget, seed=seed, objective=objective,
                        margin=parse_margin(margin_text), **({"steps": MODEL_FIRST_STEPS} if model_first else {}))
    try:
        resources = SizingResources.load(None if data_dir == "none" else data_dir, _model_dir(model_dir),
                                         log=lambda m: click.echo(m, err=True))
    except ModelError as err:
        raise UserError(f"--model: {err}; or pass --model none") from err
    except DatasetError as err:
        raise UserError(f"--data: {err}; or pass --data none (no retrieval)") from err
    found = None
    if chosen:
        from .sizing.corners import size_at_corners

        corner_config = CornerSizeConfig(**({"bias": bias} if bias is not None else {}))
        found = size_at_corners(specs, technology, chosen, config, resources=resources, yield_target=target,
                                corner_config=corner_config)
        result = found.result
    else:
        result = size(specs, technology, config, resources=resources)
    seconds = time.perf_counter() - started
    best = result.best
    if best is None and resources.table is None and resources.load_model is None:
        raise UserError("--data none with --model none leaves the loop nothing to start from; give a dataset of "
                        f"{technology.name} (--data) or a model (--model)")
    if best is None:
        raise UserError("no candidate could be simulated; raise --budget")
    if plot_path and best.result.frequency_hz is not None:
        from .sim.plot import plot_bode

        plot_bode(best.result, plot_path, title="icgen size: best design")
    answer = render_answer(best.result.design)
    if subckt_path:
        from .core.deck import render_subckt

        Path(subckt_path).parent.mkdir(parents=True, exist_ok=True)
        Path(subckt_path).write_text(render_subckt(best.result.design, technology))
    from .sim.simulate import simulate as run_simulation

    signed = run_simulation(best.result.design, technology, signoff=True).signoff  # one more run: the sign-off benches
    if as_json:
        click.echo(json.dumps({"design": best.result.design.to_dict(),
                               "metrics": best.result.metrics.to_dict() if best.result.metrics else None,
                               "specs": specs.to_dict(), "met": result.met, "simulations": result.simulations,
                               "seconds": seconds, "answer": answer, "source": best.source,
                               "health": best.result.health.to_dict() if best.result.health else None,
                               "signoff": signed.to_dict() if signed else None,
                               "conditions": conditions_of(technology), "technology": technology.provenance(),
                               **({"corners": found.report.to_dict(), "corners_skipped": list(found.skipped)}
                                  if found else {}),
                               **({"monte_carlo": _yield_record(found)} if target is not None else {})}, indent=2))
        sys.exit(EXIT_OK if result.met else EXIT_CHECK_FAILED)
    click.echo(answer + "\n")
    click.echo(f"{'spec':<22} {'target':>12} {'achieved':>12} {'margin':>10}  pass")
    for row in spec_table(result):
        kind = SPEC_KINDS[row["spec"]]
        margin = format_margin(kind.key, row["margin"])
        click.echo(f"{kind.label:<22} {kind.bound_sign + format_spec(kind.key, row['target']):>12} "
                   f"{format_spec(kind.key, row['achieved']):>12} {margin:>10}  {'yes' if row['pass'] else 'NO'}")
    click.echo("\n" + _health_table(best.result.health))
    if found is not None:  # the figures above are each at its worst corner; here every corner simulated
        click.echo(f"\ncorners ({len(found.corners)} of {corners}; achieved above = the worst corner of each):")
        click.echo(found.report.table())
        if found.skipped:
            click.echo(f"not simulated (it fails {found.report.rows[0].corner.name} already): "
                       f"{', '.join(found.skipped)}")
    if target is not None:
        click.echo("\n" + (found.monte_carlo.table() + f"\n  yield lower bound {_yield_record(found)['lower_95']:.3f}"
                           f" against --yield {target.min_yield:g}" if found.monte_carlo is not None else
                           "Monte Carlo: not run on this design (it does not pass every corner)"))
    if signed is not None:
        click.echo("\n" + _signoff_table(signed))
    _objective_block(result, resources.table, pareto_n, pareto_plot)
    click.echo(f"\nsimulated at VDD {technology.vdd_v:g} V, CL {format_si(technology.cl_f, 'F', 3)}")
    verdict = "meets every spec" if result.met else "does NOT meet the specs (closest design found; see NO rows)"
    click.echo(f"\n{verdict}; found by {best.source} after {result.simulations} simulations in {seconds:.1f} s "
               f"({result.invalid_model_answers} of {len(result.model_texts)} model answers unusable)")
    if plot_path:
        click.echo(f"Bode plot: {plot_path}")
    sys.exit(EXIT_OK if result.met else EXIT_CHECK_FAILED)


@main.command("signoff")
@click.argument("design_file", required=False, type=click.Path(dir_okay=False, allow_dash=True))
@spec_options
@click.option("--corners", default=CornerSignoffConfig.corners, show_default=True,
              help="A corner set of the technology (all, nominal) or a comma-separated list of sets and corners "
                   "such as tt_1.08V_-40C.")
@click.option("--tech", "tech", default=DEFAULT_TECH, show_default=True,
              help="Built-in technology name or path of a descriptor YAML.")
@click.option("--testbench", type=click.Choice(TESTBENCHES), default=CornerSignoffConfig.testbench, show_default=True)
@click.option("--bias", type=click.Choice(BIASES), default=str(CornerSignoffConfig.bias), show_default=True,
              help="How VB1 follows a corner's supply: track-vdd keeps VDD - VB1, fixed holds VB1; VIN never moves.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write the Bode curves of every corner, overlaid (PNG); with --mc also NAME-mc.png, a histogram "
                   "per metric.")
@click.option("--mc", "mc_samples", type=int, default=None,
              help="Also run N Monte Carlo mismatch samples at the nominal corner (the technology's mismatch: Pelgrom "
                   "offsets, or its models' own).")
@click.option("--seed", type=int, default=MonteCarloConfig.seed, show_default=True, help="Seed of the --mc samples.")
@_conditions_options
def signoff_command(design_file, corners, tech, testbench, bias, as_json, plot_path, mc_samples, seed, vdd_text,
                    cl_text, **spec_texts) -> None:
    """Sign a design off across PVT corners: one row per corner, the worst marked; exit 1 when any corner fails.

    DESIGN_FILE is JSON or an answer in the original format ('-': standard input); without it, the original work's
    example answer. A corner passes when the design is a healthy working amplifier there meeting every given spec.
    """
    from .core.score import specs_from_options
    from .sim.corners import signoff_corners
    from .sim.validate import range_problems

    technology = _at_conditions(load_technology(tech), vdd_text, cl_text)
    chosen = technology.corner_set(corners)
    given = {k: v for k, v in spec_texts.items() if v is not None}
    specs = specs_from_options(given) if given else None
    design = _design_argument(design_file)
    problems = range_problems(design, technology)
    if problems:
        raise UserError(_problems_line(problems))
    config = CornerSignoffConfig(corners=corners, testbench=testbench, bias=bias)
    mc_config = MonteCarloConfig(samples=mc_samples, seed=seed) if mc_samples is not None else None
    report = signoff_corners(design, technology, chosen, specs, config)
    mc = None
    if mc_config is not None:
        from .sim.montecarlo import monte_carlo

        mc = monte_carlo(design, technology, specs, mc_config)
    mc_plot = None
    if plot_path:
        from .sim.plot import mc_plot_path, plot_bode_corners, plot_monte_carlo

        try:
            plot_bode_corners([row.result for row in report.rows], plot_path)
        except ValueError as err:
            raise UserError(f"--plot: {err}") from err
        if mc is not None:
            mc_plot = plot_monte_carlo(mc, mc_plot_path(plot_path))
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "conditions": conditions_of(technology),
                               **({"monte_carlo": mc.to_dict()} if mc else {})}, indent=2))
    else:
        click.echo(f"{technology.name}: {len(chosen)} corner(s) of {corners}, CL {format_si(technology.cl_f, 'F', 3)}"
                   f" (nominal VDD {technology.vdd_v:g} V)\n")
        click.echo(render_answer(design) + "\n")
        click.echo(report.table())
        if mc is not None:
            click.echo("\n" + mc.table())
        if plot_path:
            click.echo(f"\nBode plot: {plot_path}" + (f"; Monte Carlo histograms: {mc_plot}" if mc_plot else ""))
    sys.exit(EXIT_OK if report.passed and (mc is None or all(mc.passed)) else EXIT_CHECK_FAILED)


@main.command("serve")
@click.option("--host", default=None, help="Address to listen on (default: loopback only, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="TCP port (default 8000; 0: any free port).")
@click.option("--model", "model_dir", default=str(DEFAULT_MODEL_DIR), show_default=True,
              help="A run folder from icgen train, or 'none'; requests pick it (or 'none') by its folder name.")
@click.option("--tech", "tech_names", multiple=True, default=(DEFAULT_TECH,), show_default=True,
              help="Technology name or descriptor path (repeatable; requests pick one by name; the first is default).")
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True,
              help="Dataset whose training split is searched for similar designs; 'none'.")
@click.option("--jobs", type=int, default=None, help="Sizing jobs at once (default 2; more wait in a queue).")
@click.option("--sim-workers", type=int, default=None, help="Simulator processes per job (default 1).")
@click.option("--results", "results_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of finished jobs, reloaded on restart (default out/serve).")
def serve_command(host, port, model_dir, tech_names, data_dir, jobs, sim_workers, results_dir) -> None:
    """Serve the web page and its JSON API (OpenAPI at /openapi.json): specs in, a verified design out."""
    try:
        from .web.config import ServeConfig
        from .web.server import build_app, serve
    except ImportError as err:
        raise UserError(f"icgen serve needs the web extra ({err.name} is missing): pip install -e '.[web]'") from err

    given = {"host": host, "port": port, "jobs": jobs, "sim_workers": sim_workers, "results": results_dir}
    config = ServeConfig(**{k: v for k, v in given.items() if v is not None})
    try:
        app = build_app(config, tech_names, _model_dir(model_dir), None if data_dir == "none" else data_dir,
                        log=lambda m: click.echo(m, err=True))
    except ModelError as err:
        raise UserError(f"--model: {err}; or pass --model none") from err
    except DatasetError as err:
        raise UserError(f"--data: {err}; or pass --data none (no retrieval)") from err
    click.echo(f"icgen serve: http://{'[' + config.host + ']' if ':' in config.host else config.host}:{config.port}/ "
               f"(results in {config.results}; Ctrl-C stops)", err=True)
    serve(app, config)


if __name__ == "__main__":  # pragma: no cover
    main()
