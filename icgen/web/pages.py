"""Read-only views for the server's info pages: the dataset's statistics, the model card, the newest eval report.

    dataset_view(Dataset("data/ptm65-v2"))      # counts, metric table, flags, correlations, figure names (JSON-ready)
    model_card_view(Path("icgen/models/smollm2-135m-fix-fine"))
    eval_report_view(Path("bench/results"))     # the report.md with the newest modification time
    render_page("Dataset", [Section("Counts", table=...)])   # HTML in which every given text is escaped

The numbers come from the stage functions `icgen data stats` calls (icgen.data.stats); the text of a model card or
a report is shown as it is written, escaped, in a <pre>; nothing here writes a file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from ..core.errors import IcgenError
from ..data.dataset import Dataset
from ..eval.folder import EvalRun

MAX_TEXT_BYTES = 256 * 1024
"""The most of a model card, config or report shown (a longer one is cut, and says so)."""
MODEL_FILES = ("README.md", "config.yaml", "metrics.json")
"""The files of a training run folder (written by icgen.llm.train) a model card page shows, in this order."""
FIGURE_SUFFIX = ".png"


class PageUnavailable(IcgenError):
    """What a page would show is not there (no dataset, no model, no report); the message says what is missing."""


def read_text(path: Path, limit: int = MAX_TEXT_BYTES) -> str:
    """A text file as text (undecodable bytes replaced), at most `limit` bytes of it."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + f"\n[cut at {limit} bytes]\n" if len(data) > limit else text


def _number(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# ---- the dataset
def figure_names(dataset: Dataset) -> list[str]:
    """The PNG figures `icgen data stats` wrote into the dataset's stats folder (empty when it was not run)."""
    folder = dataset.stats_dir
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix == FIGURE_SUFFIX and p.is_file())


def figure_path(dataset: Dataset, name: str) -> Path | None:
    """One of `figure_names` as a path; None for any other name (so no request reaches another file)."""
    return dataset.stats_dir / name if name in figure_names(dataset) else None


def dataset_view(dataset: Dataset) -> dict:
    """The dataset's summary as `icgen data stats` computes it: status counts, each metric's distribution over
    working designs, the commonest health flags, the strongest variable-metric correlations, and the figures."""
    from ..data.stats import correlations, counts, flag_counts, summary_table

    try:
        table = dataset.table
    except IcgenError as err:
        raise PageUnavailable(err.message) from err
    counted = counts(table)
    metrics = [{"metric": key, "unit": str(row["unit"]), "present": int(row["present"]),
                **{q: _number(row[q]) for q in ("min", "p5", "median", "p95", "max")}}
               for key, row in summary_table(table).iterrows()]
    flags = [{"flag": str(k), "amplifiers": int(v)} for k, v in flag_counts(table).head(12).items()]
    corr = correlations(table).stack()
    corr = corr[corr.notna()].sort_values(key=abs, ascending=False).head(10)
    strongest = [{"variable": str(v), "metric": str(m), "spearman": _number(r)} for (v, m), r in corr.items()]
    return {"name": dataset.folder.name, "counts": counted, "metrics": metrics, "flags": flags,
            "correlations": strongest, "figures": figure_names(dataset)}


# ---- the model card
def model_card_view(model_dir: Path | None, name: str) -> dict:
    """The served model's run files (README.md model card, config.yaml, metrics.json) as text, as written."""
    if model_dir is None:
        raise PageUnavailable(f"model {name!r} is retrieval and local search only: it has no model card")
    if not model_dir.is_dir():
        raise PageUnavailable(f"model {name!r}: its folder is not there any more")
    files = [{"file": file, "text": read_text(model_dir / file)} for file in MODEL_FILES
             if (model_dir / file).is_file()]
    if not files:
        raise PageUnavailable(f"model {name!r} has none of {', '.join(MODEL_FILES)}")
    return {"name": name, "files": files}


# ---- the eval report
def eval_reports(folder: Path) -> list[Path]:
    """Every eval run's report under `folder` (one level down), newest first."""
    if not folder.is_dir():
        return []
    found = [run / EvalRun.REPORT for run in folder.iterdir() if (run / EvalRun.REPORT).is_file()]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.parent.name), reverse=True)


def eval_report_view(folder: Path) -> dict:
    """The newest eval report under `folder` as text, and the names of the older ones."""
    reports = eval_reports(folder)
    if not reports:
        raise PageUnavailable(f"no eval report under {folder.name}/: run icgen eval first")
    newest = reports[0]
    return {"run": newest.parent.name, "file": newest.name, "text": read_text(newest),
            "older": [p.parent.name for p in reports[1:]]}


# ---- HTML
NAV = (("/", "Size"), ("/dataset", "Dataset"), ("/model", "Model card"), ("/report", "Eval report"))


@dataclass(frozen=True)
class Section:
    """One part of a page: a heading and any of a paragraph, a table, preformatted text and images."""

    heading: str
    """The section's heading (escaped)."""
    text: str | None = None
    """A paragraph (escaped)."""
    columns: tuple[str, ...] = ()
    """Table header cells (escaped)."""
    rows: tuple[tuple, ...] = ()
    """Table rows; each cell is escaped."""
    pre: str | None = None
    """Preformatted text shown as written (escaped)."""
    images: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """(src, alt) pairs: src is a path on this server, alt is escaped."""


def _cell(value) -> str:
    if isinstance(value, float):
        return escape(f"{value:.4g}")
    return escape("—" if value is None else str(value))


def render_page(title: str, sections: list[Section], status_line: str | None = None) -> str:
    """A whole HTML page (the site's stylesheet, no script) in which every given text is escaped."""
    nav = " · ".join(f'<a href="{href}">{escape(label)}</a>' for href, label in NAV)
    parts = ["<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>icgen: {escape(title)}</title>", '<link rel="stylesheet" href="/static/style.css">', "</head>",
             "<body>", f"<header><h1>icgen: {escape(title)}</h1><nav>{nav}</nav></header>", "<main>"]
    if status_line:
        parts.append(f'<p class="form-error" role="alert">{escape(status_line)}</p>')
    for section in sections:
        parts.append(f"<section><h2>{escape(section.heading)}</h2>")
        if section.text:
            parts.append(f"<p>{escape(section.text)}</p>")
        if section.rows:
            head = "".join(f"<th>{escape(c)}</th>" for c in section.columns)
            body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in section.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        if section.pre is not None:
            parts.append(f"<pre>{escape(section.pre)}</pre>")
        for src, alt in section.images:
            parts.append(f'<img class="figure" src="{escape(src, quote=True)}" alt="{escape(alt, quote=True)}">')
        parts.append("</section>")
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def dataset_sections(view: dict) -> list[Section]:
    c = view["counts"]
    total = max(c.get("simulated", 0), 1)
    count_rows = tuple((key, c.get(key, 0), f"{c.get(key, 0) / total:.1%}")
                       for key in ("simulated", "working", "ok_but_unhealthy", "not_amplifier", "failed"))
    sections = [
        Section("Counts", text="Working = status ok and a healthy operating point (output not railed, every device "
                               "saturated).", columns=("what", "rows", "share"), rows=count_rows,
                images=(("/api/dataset/status.svg", "designs by status"),)),
        Section("Metrics of working designs", columns=("metric", "unit", "present", "min", "5 %", "median", "95 %",
                                                       "max"),
                rows=tuple((m["metric"], m["unit"], m["present"], m["min"], m["p5"], m["median"], m["p95"], m["max"])
                           for m in view["metrics"])),
        Section("Health flags among amplifiers", columns=("flag", "amplifiers"),
                rows=tuple((f["flag"], f["amplifiers"]) for f in view["flags"]),
                text=None if view["flags"] else "none"),
        Section("Strongest variable-metric correlations (Spearman, working designs)",
                columns=("variable", "metric", "spearman"),
                rows=tuple((r["variable"], r["metric"], r["spearman"]) for r in view["correlations"])),
    ]
    if view["figures"]:
        sections.append(Section("Figures (written by icgen data stats)",
                                images=tuple((f"/api/dataset/figures/{name}", name) for name in view["figures"])))
    else:
        sections.append(Section("Figures", text=f"icgen data stats --data {view['name']} writes the figures; "
                                                "it has not been run on this dataset."))
    return sections


def model_sections(view: dict) -> list[Section]:
    return [Section(item["file"], pre=item["text"]) for item in view["files"]]


def report_sections(view: dict) -> list[Section]:
    sections = [Section(f"{view['run']}/{view['file']} (the newest)", pre=view["text"])]
    if view["older"]:
        sections.append(Section("Older reports", text=", ".join(view["older"])))
    return sections
