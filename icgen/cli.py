"""The `icgen` command line: thin click commands over the core modules.

    icgen simulate [DESIGN] [--L1 622n ...] [--json] [--plot bode.png]
    icgen validate ANSWER.txt [--json]
    icgen tech list | icgen tech show ptm65 --json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .deck import TESTBENCHES, render_answer
from .design import DESIGN_KEYS, EXAMPLE_DESIGN, METRIC_KEYS, METRIC_LABELS, METRIC_UNITS, VARIABLE_BY_KEY, DesignError
from .parse import ParsedAnswer, Problem, parse_answer, read_design_file
from .model import ModelError
from .tech import TechError, builtin_names, load_technology
from .units import UnitError, format_si, parse_quantity


class UserError(click.ClickException):
    """A one-line error for bad input: exit code 2, no traceback."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"icgen: error: {self.format_message()}", err=True)


def _tech(tech: str, corner: str | None):
    try:
        return load_technology(tech, corner=corner)
    except TechError as err:
        raise UserError(str(err)) from err


def _variable_options(func):
    for key in reversed(DESIGN_KEYS):
        v = VARIABLE_BY_KEY[key]
        func = click.option(f"--{key}", key, default=None, metavar="VALUE",
                            help=f"{v.meaning} ({v.unit}; SPICE suffixes ok, e.g. 622n)")(func)
    return func


def _common_sim_options(func):
    func = click.option("--corner", default=None, help="Process corner of technologies that have them (sky130: tt ff ss sf fs).")(func)
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
    lines.append("flags: " + ("; ".join(health.flags) if health.flags else "none (healthy: output biased, all devices saturated)"))
    if any(d.region == "subthreshold" for d in health.devices):
        lines.append("(weak inv.: Vgs < Vth, and saturated because Vds > Vdsat)")
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="icgen")
def main() -> None:
    """icgen: size and verify a two-stage Miller op-amp with ngspice."""


@main.command()
@click.argument("design_file", required=False, type=click.Path(dir_okay=False))
@_variable_options
@_common_sim_options
@click.option("--backend", type=click.Choice(["shared", "batch"]), default="shared", show_default=True,
              help="shared: libngspice through PySpice; batch: an ngspice -b subprocess.")
@click.option("--json", "as_json", is_flag=True, help="Print {design, metrics, status, health} as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Write a Bode plot (PNG).")
def simulate(design_file, tech, corner, testbench, backend, as_json, plot_path, **variables) -> None:
    """Simulate a design and print its metrics and operating-point health.

    DESIGN_FILE is JSON (SI keys R0 C0 L1 W1 ... VIN VB1) or an answer in the original format. Without it,
    the original work's example answer is simulated; --L1 622n etc. override single variables.
    """
    from .simulate import simulate as run_simulation
    from .validate import range_problems

    technology = _tech(tech, corner)
    if design_file:
        if design_file != "-" and not Path(design_file).is_file():
            raise UserError(f"{design_file}: no such file; give a JSON design or an answer in the original format")
        parsed = parse_answer(sys.stdin.read()) if design_file == "-" else read_design_file(design_file)
        if parsed.problems or parsed.design is None:
            raise UserError(f"{design_file}: {_problems_line(parsed.problems)}")
        design = parsed.design
    else:
        design = EXAMPLE_DESIGN
    overrides = {}
    for key, raw in variables.items():
        if raw is None:
            continue
        unit = VARIABLE_BY_KEY[key].answer_unit
        try:
            overrides[key] = parse_quantity(raw, unit)
        except UnitError as err:
            raise UserError(f"--{key}: {err}") from err
    try:
        design = design.replace(**overrides)
    except DesignError as err:
        raise UserError(str(err)) from err
    problems = range_problems(design, technology)
    if problems:
        raise UserError(_problems_line(problems))
    result = run_simulation(design, technology, testbench=testbench, backend=backend)
    if plot_path and result.frequency_hz is not None:
        from .plot import plot_bode

        plot_bode(result, plot_path)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(f"{technology.name} ({testbench} testbench, {backend} backend)\n")
        click.echo(render_answer(design) + "\n")
        click.echo(f"status: {result.status}" + (f" ({result.reason})" if result.reason else "") + "\n")
        click.echo(_metrics_table(result) + "\n")
        click.echo(_health_table(result.health))
        if plot_path and result.frequency_hz is not None:
            click.echo(f"\nBode plot: {plot_path}")
    if plot_path and result.frequency_hz is None:
        raise UserError(f"no AC sweep to plot: {result.status} ({result.reason})")
    if result.status == "failed":
        sys.exit(1)


@main.command()
@click.argument("answer_file", type=click.Path(dir_okay=False, allow_dash=True))
@_common_sim_options
@click.option("--no-simulate", is_flag=True, help="Check parsing, topology, units and ranges only.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(answer_file, tech, corner, testbench, no_simulate, as_json) -> None:
    """Validate an answer (a model's or a person's netlist) and simulate it; exit 1 when invalid."""
    from .validate import validate_parsed

    technology = _tech(tech, corner)
    if answer_file == "-":
        parsed: ParsedAnswer = parse_answer(sys.stdin.read())
    elif not Path(answer_file).is_file():
        raise UserError(f"{answer_file}: no such file")
    else:
        parsed = read_design_file(answer_file)
    report = validate_parsed(parsed, technology, testbench, run_simulation=not no_simulate)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(f"validation report for {answer_file} on {technology.name} ({testbench} testbench)")
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
            click.echo("\nVALID: the netlist matches the template, is in range, and simulates as an amplifier")
            if report.result.health and report.result.health.flags:
                click.echo("warning: the operating point is unhealthy: " + "; ".join(report.result.health.flags))
    sys.exit(0 if (report.valid or (no_simulate and not report.problems and report.design)) else 1)


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
        except TechError as err:
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


@data.command("generate")
@click.option("--tech", "tech", default="ptm65", show_default=True, help="Technology name or descriptor path.")
@click.option("--n-working", type=int, default=8800, show_default=True, help="Working designs to reach.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sobol scrambling seed.")
@click.option("--workers", type=int, default=None, help="Simulation processes (default: all cores).")
@click.option("--testbench", type=click.Choice(TESTBENCHES), default="feedback", show_default=True)
@click.option("--chunk", type=int, default=1024, show_default=True, help="Designs per resumable part.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default data/TECH).")
def data_generate(tech, n_working, seed, workers, testbench, chunk, out_dir) -> None:
    """Sample and simulate designs until N working ones; kill it any time and re-run to resume."""
    from tqdm import tqdm

    from .dataset import GenerateConfig, generate

    _tech(tech, None)
    try:
        config = GenerateConfig(tech=tech, n_working=n_working, seed=seed, testbench=testbench, chunk=chunk)
    except ValueError as err:
        raise UserError(str(err)) from err
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
        table = generate(config, out, workers=workers, progress=progress)
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"\ninterrupted: finished parts are kept in {out}/parts; run the same command to resume", err=True)
        sys.exit(130)
    except RuntimeError as err:
        bar.close()
        raise UserError(str(err)) from err
    bar.close()
    from .splits import SPLITS, make_splits

    if not (out / SPLITS).is_file():  # written once, with the data
        make_splits(table, seed=seed).to_parquet(out / SPLITS, index=False)
    meta = json.loads((out / "meta.json").read_text())
    c = meta["counts"]
    click.echo(f"{out}/designs.parquet: {c['simulated']} designs simulated: {c['working']} working "
               f"({meta['yield_working']:.1%}: amplifier with a healthy operating point), {c['ok']} amplifiers "
               f"({meta['yield_ok']:.1%}), {c['not_amplifier']} not amplifiers, {c['failed']} failed; "
               f"{meta['wall_s']:.0f} s over {meta['sessions']} session(s)")


def _load_data(data_dir: str):
    from .dataset import load_dataset
    from .splits import SPLITS

    folder = Path(data_dir)
    if not (folder / "designs.parquet").is_file():
        raise UserError(f"{folder}: no designs.parquet; run icgen data generate --out {folder} first")
    if not (folder / SPLITS).is_file():
        raise UserError(f"{folder}: no {SPLITS}; run icgen data split --data {folder} first")
    import pandas as pd

    return load_dataset(folder), pd.read_parquet(folder / SPLITS)


@data.command("split")
@click.option("--data", "data_dir", default="data/ptm65", show_default=True, type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite existing splits (they are meant to be written once).")
def data_split(data_dir, seed, force) -> None:
    """Write train/validation/test splits (random, and held out by metric-space clusters) beside the data."""
    from .dataset import load_dataset
    from .splits import SPLITS, make_splits

    folder = Path(data_dir)
    if (folder / SPLITS).is_file() and not force:
        raise UserError(f"{folder / SPLITS} exists; splits are written once (use --force to overwrite)")
    if not (folder / "designs.parquet").is_file():
        raise UserError(f"{folder}: no designs.parquet; run icgen data generate --out {folder} first")
    splits = make_splits(load_dataset(folder), seed=seed)
    splits.to_parquet(folder / SPLITS, index=False)
    for kind in ("random", "heldout"):
        counts = splits[kind].value_counts()
        click.echo(f"{kind:<8} " + ", ".join(f"{name} {int(counts.get(name, 0))}" for name in ("train", "validation", "test")))
    click.echo(f"wrote {folder / SPLITS}")


@data.command("export")
@click.option("--format", "fmt", type=click.Choice(["seed", "compact", "chat"]), default="compact", show_default=True)
@click.option("--split", type=click.Choice(["train", "validation", "test"]), default="train", show_default=True)
@click.option("--kind", type=click.Choice(["heldout", "random"]), default="heldout", show_default=True,
              help="heldout: test = whole metric-space clusters; random: rows drawn at random.")
@click.option("--data", "data_dir", default="data/ptm65", show_default=True, type=click.Path(file_okay=False))
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None, help="JSONL file (default stdout).")
@click.option("--tokens", is_flag=True, help="Also count tokens per pair with the default model's tokenizer.")
def data_export(fmt, split, kind, data_dir, out_file, tokens) -> None:
    """Export prompt/completion (or chat) JSONL pairs for one split."""
    from .pairs import export_pairs, pair_token_counts

    table, splits = _load_data(data_dir)
    pairs = export_pairs(table, splits, fmt, split, kind)
    lines = "".join(json.dumps(p) + "\n" for p in pairs)
    if out_file:
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        Path(out_file).write_text(lines)
        click.echo(f"wrote {len(pairs)} {fmt} pairs ({kind} {split}) to {out_file}", err=True)
    else:
        click.echo(lines, nl=False)
    if tokens:
        import numpy as np

        from .model import load_tokenizer

        counts = np.array(pair_token_counts(pairs, load_tokenizer()))
        click.echo(f"tokens per pair ({fmt}): mean {counts.mean():.1f}, median {np.median(counts):.0f}, "
                   f"max {counts.max()}, total {counts.sum()}", err=True)


@data.command("stats")
@click.option("--data", "data_dir", default="data/ptm65", show_default=True, type=click.Path(file_okay=False))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Default: DATA/stats.")
def data_stats(data_dir, out_dir) -> None:
    """Counts, yield, distributions, correlations: PNG figures and a markdown summary."""
    from .dataset import load_dataset
    from .stats import counts, write_report

    folder = Path(data_dir)
    if not (folder / "designs.parquet").is_file():
        raise UserError(f"{folder}: no designs.parquet; run icgen data generate --out {folder} first")
    table = load_dataset(folder)
    summary = write_report(table, out_dir or folder / "stats", name=folder.name)
    c = counts(table)
    click.echo(f"{c['simulated']} simulated, {c['working']} working ({c['working'] / c['simulated']:.1%}), "
               f"{c['ok_but_unhealthy']} amplifiers with an unhealthy operating point, "
               f"{c.get('not_amplifier', 0)} not amplifiers, {c.get('failed', 0)} failed")
    click.echo(f"wrote {summary} and its figures")


@data.command("augment")
@click.option("--data", "data_dir", default="data/ptm65", show_default=True, type=click.Path(file_okay=False))
@click.option("--around", "around", type=click.Path(dir_okay=False), default=None,
              help="Designs to sweep around: JSON/JSONL designs, model generations, or an answer-format file.")
@click.option("--source", type=click.Choice(["user", "model", "sweep"]), default="user", show_default=True,
              help="What the --around designs are; they are simulated and added with this source (sweep: not added).")
@click.option("--fill-gaps", is_flag=True, help="Sweep around working designs in sparse cells of the metric space.")
@click.option("--max-centers", type=int, default=100, show_default=True, help="--fill-gaps: designs to sweep around.")
@click.option("--n", "n_per_center", type=int, default=32, show_default=True, help="Designs per centre.")
@click.option("--radius", type=float, default=0.25, show_default=True,
              help="R0, C0, L, W within x/÷ (1 + radius) of the centre.")
@click.option("--radius-v", type=float, default=0.05, show_default=True, help="VIN, VB1 within ± this many volts.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=None)
def data_augment(data_dir, around, source, fill_gaps, max_centers, n_per_center, radius, radius_v, seed,
                 workers) -> None:
    """Grow the dataset by simulation sweeps (resumable; nothing is added twice)."""
    from tqdm import tqdm

    from .augment import Radius, augment, read_centers, sparse_centers
    from .dataset import load_dataset

    folder = Path(data_dir)
    if not (folder / "designs.parquet").is_file():
        raise UserError(f"{folder}: no designs.parquet; run icgen data generate --out {folder} first")
    if bool(around) == bool(fill_gaps):
        raise UserError("give exactly one of --around FILE or --fill-gaps")
    if n_per_center < 1:
        raise UserError("--n must be at least 1")
    try:
        sweep_radius = Radius(relative=radius, volts=radius_v)
        if around:
            if not Path(around).is_file():
                raise UserError(f"{around}: no such file")
            centers, kind = read_centers(around), "around"
        else:
            centers, kind, source = sparse_centers(load_dataset(folder), max_centers, seed), "fill-gaps", "sweep"
    except ValueError as err:
        raise UserError(str(err)) from err
    bar = tqdm(total=len(centers) * (n_per_center + 1), unit="sim", desc=f"augment {kind}", dynamic_ncols=True,
               disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.update(0)

    try:
        result = augment(folder, centers, source, n_per_center, sweep_radius, seed, kind, workers=workers,
                         progress=progress)
    except KeyboardInterrupt:
        bar.close()
        click.echo("\ninterrupted: finished parts are kept; run the same command to resume", err=True)
        sys.exit(130)
    bar.close()
    b, a = result["coverage_before"], result["coverage_after"]
    click.echo(f"run {result['run']}: {result['candidates']} new candidates around {len(centers)} design(s); "
               f"added {result['added_rows']} rows, {result['added_working']} working")
    click.echo(f"metric-space coverage (gain 10 dB x UGB half-decade x PM 15 deg cells): covered {b['covered_cells']} "
               f"-> {a['covered_cells']}, sparse (<3 working) {b['sparse_cells']} -> {a['sparse_cells']}, "
               f"working designs {b['working']} -> {a['working']}")


JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "smollm2-135m-cpu"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "ptm65"


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
              help="YAML config (default: icgen/configs/smollm2-135m-cpu.yaml, the embedded default).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--quant", type=click.Choice(["auto", "nf4", "none"]), default=None,
              help="nf4: QLoRA (CUDA); none: plain LoRA; auto: nf4 on CUDA, none on CPU.")
@click.option("--resume", is_flag=True, help="Continue from the run's last checkpoint.")
def train_command(config_path, overrides, quant, resume) -> None:
    """Fine-tune a Llama-family model with LoRA/QLoRA on the spec->sizing pairs (loss on completions only)."""
    from .train import ConfigError, load_config, train

    try:
        config = load_config(config_path, list(overrides) + ([f"quant={quant}"] if quant else []))
    except ConfigError as err:
        raise UserError(str(err)) from err
    _with_jemalloc()
    try:
        metrics = train(config, resume=resume)
    except (ConfigError, ModelError) as err:
        raise UserError(str(err)) from err
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: checkpoints are in {config.out}; run again with --resume", err=True)
        sys.exit(130)
    click.echo(f"{config.out}: {metrics['steps']} steps, validation loss {metrics['base_validation_loss']:.4f} "
               f"(untuned base) -> {metrics['best_validation_loss']:.4f}; {metrics['wall_s'] / 60:.1f} min")




@main.command("merge")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=str(DEFAULT_MODEL_DIR),
              show_default=True, help="A run folder written by icgen train.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Where to write the merged model.")
def merge_command(model_dir, out_dir) -> None:
    """Write a merged model: the dequantised base with the LoRA adapter folded into its weights."""
    from .model import merge_run

    try:
        out = merge_run(model_dir, out_dir)
    except ModelError as err:
        raise UserError(str(err)) from err
    click.echo(f"wrote merged model to {out}")


@main.group("model")
def model_group() -> None:
    """Trained models."""


@model_group.command("info")
@click.argument("model_dir", required=False, type=click.Path(file_okay=False), default=str(DEFAULT_MODEL_DIR))
@click.option("--json", "as_json", is_flag=True)
def model_info_command(model_dir, as_json) -> None:
    """Base, adapter path, pair format and validation loss of a trained model (default: the embedded one)."""
    from .model import model_info

    try:
        info = model_info(model_dir)
    except ModelError as err:
        raise UserError(str(err)) from err
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            click.echo(f"{key:<22} {value}")


def _has_splits(data_dir) -> bool:
    return (Path(data_dir) / "designs.parquet").is_file() and (Path(data_dir) / "splits.parquet").is_file()


def _training_rows(data_dir, kind: str = "heldout"):
    """(training rows of a split kind, the whole table, the splits) of a dataset folder."""
    import pandas as pd

    from .dataset import load_dataset

    if not _has_splits(data_dir):
        raise UserError(f"--data {data_dir}: needs designs.parquet and splits.parquet; run icgen data generate "
                        f"and icgen data split")
    data = load_dataset(data_dir)
    splits = pd.read_parquet(Path(data_dir) / "splits.parquet")
    if kind not in splits.columns:
        raise UserError(f"--split-kind {kind!r}: {data_dir}/splits.parquet has {', '.join(splits.columns[1:3])}")
    train_index = set(splits.loc[splits[kind] == "train", "index"])
    return data[data["index"].isin(train_index)], data, splits


def _surrogate_loader(data_dir, train, data, splits, kind: str = "heldout"):
    """A callable giving the simulator surrogate of these training rows (cached under DATA/surrogate/KIND), or None
    when torch is not installed (the loop then refines by the designer's directions alone)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    from .surrogate import surrogate_for

    def load():
        check = data[data["index"].isin(set(splits.loc[splits[kind] == "validation", "index"])) & data["working"]]
        return surrogate_for(train[train["working"]], Path(data_dir) / "surrogate" / kind, check_rows=check,
                             log=lambda m: click.echo(m, err=True))
    return load


def _surrogate_provenance(data_dir, kind: str) -> dict | None:
    """What the cached surrogate was fitted on and how well it predicts the validation designs."""
    meta = Path(data_dir) / "surrogate" / kind / "meta.json"
    if not meta.is_file():
        return None
    recorded = json.loads(meta.read_text())
    return {k: recorded.get(k) for k in ("fingerprint", "rows", "median_abs_error_on_check_rows", "check_rows")}


@main.command("eval")
@click.option("--split", default="test", show_default=True, help="Held-out split whose designs become targets.")
@click.option("--split-kind", default="heldout", show_default=True, type=click.Choice(["heldout", "random"]))
@click.option("--n", "n_targets", type=int, default=200, show_default=True, help="Held-out targets.")
@click.option("--budget", type=int, default=20, show_default=True, help="Simulations per target and method.")
@click.option("--samples", type=int, default=6, show_default=True, help="N of best-of-N.")
@click.option("--methods", default=",".join(("nearest-neighbour", "random-search", "optuna-tpe", "loop",
                                             "model-greedy", "model-best-of-n")), show_default=True)
@click.option("--no-hand", is_flag=True, help="Leave out the hand-written targets.")
@click.option("--model", "model_dir", default=str(DEFAULT_MODEL_DIR), show_default=True,
              help="A run folder from icgen train; 'none' for the baselines and the model-free loop.")
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True)
@click.option("--tech", "tech", default="ptm65", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/eval", show_default=True)
@click.option("--update-card", is_flag=True, help="Write the summary into the model folder's README.md.")
def eval_command(split, split_kind, n_targets, budget, samples, methods, no_hand, model_dir, data_dir, tech, seed,
                 out_dir, update_card) -> None:
    """Compare the model, the sizing loop and baselines on held-out targets under one simulation budget.

    Writes OUT/report.md, eval.png, summary.csv, outcomes.csv/jsonl and meta.json; re-running with the same
    options resumes an interrupted run.
    """
    import os
    import platform
    import time as _time

    from tqdm import tqdm

    from .dataset import _git_sha, ngspice_version
    from .evaluate import Context, EvalConfig, all_targets, run_eval, write_report
    from .simulate import SimulatorPool

    try:
        config = EvalConfig(split=split, split_kind=split_kind, n=n_targets, budget=budget, samples=samples,
                            seed=seed, methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
                            hand=not no_hand)
    except ValueError as err:
        raise UserError(str(err)) from err
    technology = _tech(tech, None)
    train, data, splits = _training_rows(data_dir, split_kind)
    try:
        targets = all_targets(data, splits, config)
    except ValueError as err:
        raise UserError(str(err)) from err
    out = Path(out_dir)
    stamp = {"config": repr(config), "data": str(Path(data_dir).resolve()), "model": model_dir, "tech": tech}
    if (out / "run.json").is_file() and json.loads((out / "run.json").read_text()) != stamp:
        raise UserError(f"--out {out_dir} holds a run with other options; pick another --out or delete it")
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(stamp, indent=2))
    model = tokenizer = None
    fmt = "compact"
    model_info = None
    if model_dir != "none":
        from .model import load_finetuned, model_info as read_model_info, run_config

        try:
            fmt = run_config(model_dir)["format"]
            model_info = read_model_info(model_dir)
            model, tokenizer = load_finetuned(model_dir, merge=True)
        except ModelError as err:
            raise UserError(f"--model: {err}; or pass --model none") from err
    started = _time.time()
    log = out / "outcomes.jsonl"
    before = len(log.read_text().splitlines()) if log.is_file() else 0
    # one entry per invocation, written before the work so a killed run still leaves its trace (wall_s null)
    sessions_path = out / "sessions.json"
    sessions = json.loads(sessions_path.read_text()) if sessions_path.is_file() else []
    sessions.append({"started": _time.strftime("%Y-%m-%d %H:%M:%S UTC", _time.gmtime(started)),
                     "wall_s": None, "outcomes_before": before, "outcomes_after": None})
    sessions_path.write_text(json.dumps(sessions, indent=2))
    with SimulatorPool() as pool:
        loader = _surrogate_loader(data_dir, train, data, splits, split_kind) if "loop" in config.methods else None
        ctx = Context(technology, pool, train, config, model=model, tokenizer=tokenizer, fmt=fmt,
                      surrogate=loader() if loader else None)
        outcomes = run_eval(targets, ctx, out, progress=tqdm)
    sessions[-1].update(wall_s=round(_time.time() - started, 1), outcomes_after=len(log.read_text().splitlines()))
    sessions_path.write_text(json.dumps(sessions, indent=2))
    provenance = {"git": _git_sha(), "ngspice": ngspice_version(), "tech": technology.name, "data": data_dir,
                  "training designs": int(train["working"].sum()), "model": model_info,
                  "surrogate": _surrogate_provenance(data_dir, split_kind),
                  "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
                  "sessions": sessions}
    report = write_report(outcomes, config, out, provenance)
    click.echo(report.read_text().split("## Provenance")[0])
    click.echo(f"report: {report}")
    if update_card:
        if model is None:
            raise UserError("--update-card needs a model; drop --model none")
        from .evaluate import update_model_card

        click.echo(f"model card: {update_model_card(model_dir, outcomes, config, report)}")


@main.command("size")
@click.option("--gain", default=None, help="DC gain lower bound: 38dB or 38.")
@click.option("--ugb", default=None, help="Unity-gain bandwidth lower bound: 10MHz or 10e6.")
@click.option("--pm", default=None, help="Phase margin lower bound: 52deg or 52.")
@click.option("--gm", default=None, help="Gain margin lower bound: 10dB or 10.")
@click.option("--bw", default=None, help="3 dB bandwidth lower bound: 100kHz or 1e5.")
@click.option("--power", default=None, help="Power upper bound: 50uW or 50e-6.")
@click.option("--tech", "tech", default="ptm65", show_default=True)
@click.option("--model", "model_dir", default=str(DEFAULT_MODEL_DIR), show_default=True,
              help="A run folder from icgen train; 'none' for retrieval and local search only.")
@click.option("--data", "data_dir", default=str(DEFAULT_DATA_DIR), show_default=True,
              help="Dataset whose training split is searched for similar designs.")
@click.option("--samples", type=int, default=2, show_default=True,
              help="Model candidates per batched generate (asked when retrieval misses).")
@click.option("--budget", type=int, default=20, show_default=True, help="Most simulations to spend.")
@click.option("--model-first", is_flag=True,
              help="Ask the model right after retrieval, before the surrogate steps (slower; measured no better).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Bode plot of the result (PNG).")
def size_command(gain, ugb, pm, gm, bw, power, tech, model_dir, data_dir, samples, budget, model_first, seed,
                 as_json, plot_path) -> None:
    """Size the op-amp for the given specs; every reported design is verified by simulation."""
    import time as _time

    from .score import SpecError, Specs, parse_spec
    from .size import SizeConfig, size, spec_table

    started = _time.perf_counter()
    try:
        raw = {"gain_db": ("gain", gain), "ugb_hz": ("ugb", ugb), "pm_deg": ("pm", pm), "gm_db": ("gm", gm),
               "bw3db_hz": ("bw", bw), "power_w": ("power", power)}
        specs = Specs(**{k: parse_spec(opt, v) for k, (opt, v) in raw.items() if v is not None})
        config = SizeConfig(samples=samples, budget=budget, seed=seed, model_after_surrogate=not model_first)
    except (SpecError, ValueError) as err:
        raise UserError(str(err).splitlines()[0]) from err
    technology = _tech(tech, None)
    table = load_surrogate = None
    if data_dir and _has_splits(data_dir):
        table, data, splits = _training_rows(data_dir)
        load_surrogate = _surrogate_loader(data_dir, table, data, splits)
    load_model = None
    fmt = "compact"
    if model_dir and model_dir != "none":
        from functools import partial

        from .model import load_finetuned, run_config

        try:
            fmt = run_config(model_dir)["format"]
        except ModelError as err:
            raise UserError(f"--model: {err}; or pass --model none") from err
        load_model = partial(load_finetuned, model_dir, merge=True)  # loaded only if retrieval misses
    from .simulate import SimulatorPool

    with SimulatorPool() as pool:
        result = size(specs, technology, config, pool, table=table, fmt=fmt, load_model=load_model,
                      load_surrogate=load_surrogate)
    seconds = _time.perf_counter() - started
    best = result.best
    if best is None:
        raise UserError("no candidate could be simulated; raise --budget")
    if plot_path and best.result.frequency_hz is not None:
        from .plot import plot_bode

        plot_bode(best.result, plot_path, title="icgen size: best design")
    answer = render_answer(best.result.design)
    if as_json:
        click.echo(json.dumps({"design": best.result.design.to_dict(),
                               "metrics": best.result.metrics.to_dict() if best.result.metrics else None,
                               "specs": specs.to_dict(), "met": result.met, "simulations": result.simulations,
                               "seconds": seconds, "answer": answer, "source": best.source,
                               "health": best.result.health.to_dict() if best.result.health else None}, indent=2))
        return
    click.echo(answer + "\n")
    click.echo(f"{'spec':<22} {'target':>12} {'achieved':>12} {'margin':>10}  pass")
    for row in spec_table(result):
        unit = METRIC_UNITS[row["spec"]]
        margin = "—" if row["margin"] is None else (f"{row['margin']:+.2f} dec" if unit in ("Hz", "W")
                                                    else f"{row['margin']:+.1f}")
        bound = "≤" if row["spec"] == "power_w" else "≥"
        click.echo(f"{METRIC_LABELS[row['spec']]:<22} {bound + format_si(row['target'], unit):>12} "
                   f"{format_si(row['achieved'], unit):>12} {margin:>10}  {'yes' if row['pass'] else 'NO'}")
    click.echo("\n" + _health_table(best.result.health))
    verdict = "meets every spec" if result.met else "does NOT meet the specs (closest design found; see NO rows)"
    click.echo(f"\n{verdict}; found by {best.source} after {result.simulations} simulations in {seconds:.1f} s "
               f"({result.invalid_model_answers} of {len(result.model_texts)} model answers unusable)")
    if plot_path:
        click.echo(f"Bode plot: {plot_path}")


if __name__ == "__main__":  # pragma: no cover
    main()
