"""The FastAPI app: the page, its assets and the JSON API (OpenAPI at /openapi.json).

    app = create_app(ServeConfig(), runner, techs={"ptm65": tech}, models=("none",),
                     data_dir=Path("data/ptm65-v2"), model_dirs={"none": None})

Beside the sizing page, read-only pages show the dataset's statistics (/dataset), the served model's card (/model)
and the newest eval report (/report); every text in them is escaped (icgen.web.pages).

Handlers parse the request, call one stage function (or queue a job) and answer JSON. Bad input is a 4xx with
{"error": message, "field": name}, never a stack trace; Host and Origin are checked against DNS rebinding and
cross-site posts, and bodies are limited in size (413).
"""
from __future__ import annotations

import logging
import math
import re
import threading
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Body, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..core.deck import Sweep, render_answer, render_circuit, render_subckt
from ..core.design import Design
from ..core.errors import SPEC_OPTIONS, IcgenError
from ..core.measure import bode
from ..core.objective import OBJECTIVES, objective, parse_margin
from ..core.parse import MAX_ANSWER_BYTES, parse_design_text
from ..core.score import SPEC_HELP, SPEC_KINDS, specs_from_options
from ..core.tech import Technology
from ..data.dataset import Dataset
from ..sizing.config import MAX_BUDGET, CornerSizeConfig, SizeConfig
from . import pages
from .config import ServeConfig
from .jobs import Busy, JobManager, Runner
from .store import JOB_ID, ResultStore
from .svg import bar_svg, bode_svg

log = logging.getLogger("icgen.web")
ASSETS = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
"""Every file the page needs, served from the package (no CDN, works offline)."""
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SECURITY_HEADERS = [(b"content-security-policy", b"default-src 'self'; img-src 'self' data:; object-src 'none'; "
                                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
_FIELD = re.compile(r"\{([a-z][a-z0-9_]*)\}")


def clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null (JSON has neither), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def error(status: int, message: str, field: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


def spec_field(err: IcgenError) -> str | None:
    """The form field (a spec's short name) a domain error is about: the first `{field}` of its message."""
    found = _FIELD.search(err.message)
    return SPEC_OPTIONS.get(found.group(1), found.group(1)) if found else None


# ---- request bodies (the OpenAPI document describes them)
SpecTexts = create_model(
    "SpecTexts", __config__=ConfigDict(extra="forbid", populate_by_name=True),
    **{name.replace("-", "_"): (str | None, Field(None, alias=name, max_length=100, description=SPEC_HELP[key],
                                                  examples=[SPEC_KINDS[key].example] if key in SPEC_KINDS else None))
       for key, name in SPEC_OPTIONS.items()})


class SizeRequest(BaseModel):
    """Specs as the CLI's options take them ({"gain": "38dB", "pm": "52"}), and how to size."""

    model_config = ConfigDict(extra="forbid")
    specs: SpecTexts  # type: ignore[valid-type]
    budget: int | None = Field(None, ge=1, le=MAX_BUDGET, description="Most simulations to spend.")
    tech: str | None = Field(None, max_length=100, description="A technology the server was started with, by name.")
    model: str | None = Field(None, max_length=100, description="A model the server was started with, or 'none'.")
    objective: str | None = Field(None, max_length=40, description="What to optimise once the specs are met: "
                                  + ", ".join(OBJECTIVES) + f" (default {SizeConfig.objective}).")
    margin: str | None = Field(None, max_length=100, description="How far inside every bound a reported design "
                               f"stays, as --margin takes it (default {SizeConfig.margin.text()}; 0 for none).")
    corners: str | None = Field(None, max_length=200, description="Meet the specs at every corner of a set of the "
                                "technology (all, nominal) or a comma-separated list of sets and corners.")


class ValidateRequest(BaseModel):
    """A pasted answer (the original netlist format) or a design JSON, validated like `icgen validate`."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="The answer or design JSON text (at most 64 KiB).")
    tech: str | None = Field(None, max_length=100)
    simulate: bool = Field(True, description="Simulate the design when it parses (false: parse and ranges only).")


class Guard:
    """ASGI middleware: Host must be a served name, a POST must come from this origin, bodies are size-limited;
    every answer carries a content security policy."""

    def __init__(self, app, hosts: frozenset[str], max_body_bytes: int) -> None:
        self.app, self.hosts, self.max_body_bytes = app, hosts, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host_header = headers.get("host", "")
        host = _host_name(host_header)
        if host not in self.hosts:
            return await _send_error(send, 400, f"Host {host_header[:80]!r} is not served here; open the page at "
                                                f"http://127.0.0.1 (or another name the server was started with)",
                                     "Host")
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and not _same_origin(origin, scope.get("scheme", "http"), host_header):
                return await _send_error(send, 403, f"a request from origin {origin[:80]!r} is refused: this server "
                                                    f"takes requests from its own page only", "Origin")
            if headers.get("sec-fetch-site") == "cross-site":
                return await _send_error(send, 403, "a cross-site request is refused", "Origin")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return await _send_error(send, 413, f"the request body is larger than the limit of "
                                                f"{self.max_body_bytes} bytes", "body")
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                return await _send_error(send, 413, f"the request body is larger than the limit of "
                                                    f"{self.max_body_bytes} bytes", "body")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        return await self.app(scope, replay, with_headers)


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same_origin(origin: str, scheme: str, host_header: str) -> bool:
    try:
        parts = urlsplit(origin)
        return parts.scheme == scheme and parts.netloc.lower() == host_header.strip().lower() and not parts.path
    except ValueError:
        return False


async def _send_error(send, status: int, message: str, field: str | None) -> None:
    response = error(status, message, field)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")] + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": response.body})


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    first = (exc.errors() or [{}])[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "path", "query")]
    kind = first.get("type", "")
    if kind == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        return error(422, f"the body is not valid JSON ({reason}); send an object such as "
                          f'{{"specs": {{"gain": "38dB"}}}}', "body")
    field = ".".join(p for p in loc if not p.isdigit()) or "body"
    if kind == "extra_forbidden":
        known = ", ".join(SPEC_OPTIONS.values()) if field.startswith("specs.") else "the fields of the API's schema"
        return error(422, f"{field}: unknown field; use {known}", field)
    message = first.get("msg", "invalid value")
    return error(422, f"{field}: {message}", field)


def create_app(config: ServeConfig, runner: Runner, techs: dict[str, Technology], models: tuple[str, ...],
               on_close=None, data_dir: Path | None = None, model_dirs: dict[str, Path | None] | None = None) -> FastAPI:
    """The app over a job runner, the server's technologies (by name; the first is the default) and model names
    (the first is the default; 'none' means retrieval and local search only); `data_dir` is the dataset the runner
    retrieves from and `model_dirs` each model's run folder (None: none), shown read-only on their pages."""
    if not techs or not models:
        raise ValueError("the server needs at least one technology and one model name")
    store = ResultStore(config.results)
    manager = JobManager(runner, store, config)
    default_tech, default_model = next(iter(techs)), models[0]
    validations = threading.BoundedSemaphore(config.jobs)
    dataset = Dataset(data_dir) if data_dir is not None else None
    model_dirs = dict(model_dirs or {})
    dataset_cache: list[dict] = []
    dataset_lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(app):
        yield
        manager.close(wait=False)
        if on_close is not None:
            on_close()

    app = FastAPI(title="icgen", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Size a two-stage Miller op-amp verified by ngspice: specs in, the verified netlist, "
                              "spec table, operating point and Bode plot out.")
    app.state.manager, app.state.store, app.state.unhandled = manager, store, 0
    app.add_middleware(Guard, hosts=config.served_hosts(), max_body_bytes=config.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        return _validation_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:  # FastAPI could not read the body (a form or a bad encoding, say)
            return error(422, "the body could not be read; send a JSON object with Content-Type: application/json",
                         "body")
        return error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception):
        app.state.unhandled += 1
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error(500, "internal error; see the server log")

    def pick(kind: str, name: str | None, served) -> str:
        name = name or (default_tech if kind == "tech" else default_model)
        if name not in served:
            raise LookupError(f"{kind} {name[:40]!r} is not served here; use one of {', '.join(served)}")
        return name

    def job_or_404(job_id: str):
        job = manager.get(job_id)
        if job is None:
            raise StarletteHTTPException(404, f"no job {job_id}: it never existed, or the server stopped before it "
                                              f"finished (only finished jobs are kept)")
        return job

    def finished_result(job_id: str) -> dict:
        job = job_or_404(job_id)
        if job.result is None or not job.result.get("design"):
            raise StarletteHTTPException(409, f"job {job_id} has no design yet (state {job.state})")
        return job.result

    # ---- the page
    @app.get("/", include_in_schema=False)
    def page():
        return asset("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str):
        if name not in ASSETS:
            raise StarletteHTTPException(404, f"no asset {name[:40]!r}")
        return FileResponse(str(resources.files(__package__) / "static" / name), media_type=ASSETS[name])

    # ---- the API
    @app.get("/api/info", summary="What the server offers: specs, technologies, models, limits")
    def info():
        return {"version": __version__, "techs": list(techs), "models": list(models),
                "specs": [{"name": name, "key": key, "help": SPEC_HELP[key],
                           "example": SPEC_KINDS[key].example if key in SPEC_KINDS else None}
                          for key, name in SPEC_OPTIONS.items()],
                "default_budget": config.default_budget, "max_budget": config.max_budget, "lease_s": config.lease_s,
                "poll_s": config.poll_s, "jobs": config.jobs, "queue": config.queue,
                "max_body_bytes": config.max_body_bytes, "max_answer_bytes": MAX_ANSWER_BYTES,
                "objectives": [{"name": o.name, "what": o.what} for o in OBJECTIVES.values()],
                "default_objective": SizeConfig.objective, "default_margin": SizeConfig.margin.text(),
                "corner_sets": {name: list(t.corner_sets) for name, t in techs.items()},
                "budget_per_corner": CornerSizeConfig.budget_per_corner,
                "pages": {"dataset": dataset is not None, "models": [m for m in models if model_dirs.get(m)]}}

    @app.post("/api/size", status_code=202, summary="Start a sizing job; 429 when the queue is full")
    def start_size(body: SizeRequest):
        texts = {name: text for name, text in body.specs.model_dump(by_alias=True).items() if text is not None}
        try:
            specs_from_options(texts)  # the CLI's parse and checks: a bad spec is refused now, by name
        except IcgenError as err:
            return error(422, str(err).splitlines()[0], spec_field(err))
        goal = body.objective or SizeConfig.objective
        margin = SizeConfig.margin.text() if body.margin is None or not body.margin.strip() else body.margin.strip()
        try:
            objective(goal)  # the core's checks, and their one-line messages, as `icgen size` gives them
        except IcgenError as err:
            return error(422, str(err).splitlines()[0], "objective")
        try:
            parse_margin(margin)
        except IcgenError as err:
            return error(422, str(err).splitlines()[0], "margin")
        try:
            tech, model = pick("tech", body.tech, techs), pick("model", body.model, models)
        except LookupError as err:
            return error(422, str(err), "tech" if str(err).startswith("tech") else "model")
        corners = body.corners.strip() if body.corners and body.corners.strip() else None
        if corners is not None:
            try:
                chosen = techs[tech].corner_set(corners)
            except IcgenError as err:
                return error(422, str(err).splitlines()[0], "corners")  # the CLI's message
            budget = CornerSizeConfig().budget(body.budget, len(chosen))
        else:
            budget = body.budget or config.default_budget
        if budget > config.max_budget:
            return error(422, f"budget: {budget} simulations is above this server's limit of {config.max_budget}",
                         "budget")
        try:
            job = manager.submit({"specs": texts, "budget": budget, "tech": tech, "model": model, "objective": goal,
                                  "margin": margin, "corners": corners}, budget)
        except Busy as err:
            return error(429, str(err), headers={"Retry-After": "5"})
        return {"id": job.id, "state": str(job.state), "lease_s": config.lease_s}

    @app.get("/api/jobs/{job_id}", summary="A job's progress, and its result when done")
    def get_job(job_id: str = PathParam(pattern=JOB_ID.pattern)):
        return clean(job_or_404(job_id).view(manager.clock()))

    @app.post("/api/jobs/{job_id}/lease", summary="Renew a job's lease (the page does while it is open)")
    def renew(job_id: str = PathParam(pattern=JOB_ID.pattern)):
        job = job_or_404(job_id)
        manager.renew(job_id)
        return {"id": job.id, "state": str(job.state), "lease_left_s": job.view(manager.clock())["lease_left_s"]}

    @app.post("/api/jobs/{job_id}/cancel", summary="Stop a job; it keeps the best design found so far")
    def cancel(job_id: str = PathParam(pattern=JOB_ID.pattern)):
        job_or_404(job_id)
        manager.cancel(job_id)
        return {"id": job_id, "cancelling": True}

    @app.get("/api/jobs/{job_id}/bode.svg", summary="The Bode plot of the job's design, from its simulated points")
    def job_bode(job_id: str = PathParam(pattern=JOB_ID.pattern)):
        sweep = finished_result(job_id).get("sweep")
        if not sweep:
            raise StarletteHTTPException(404, "this design has no AC sweep to plot")
        svg = bode_svg(sweep["frequency_hz"], sweep["gain_db"], sweep["phase_deg"], title="icgen size: best design")
        return Response(svg, media_type="image/svg+xml")

    def download(content: str, filename: str, media_type: str) -> Response:
        return Response(content, media_type=media_type,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    def job_design(job_id: str) -> tuple[Design, Technology, dict]:
        result = finished_result(job_id)
        tech = techs.get(result.get("tech"))
        if tech is None:
            raise StarletteHTTPException(404, f"technology {result.get('tech')!r} is not served now")
        return Design.from_dict(result["design"]), tech, result

    @app.get("/api/jobs/{job_id}/answer.txt", summary="The design in the original answer format")
    def job_answer(job_id: str = PathParam(pattern=JOB_ID.pattern)):
        return download(finished_result(job_id)["answer"] + "\n", f"icgen-{job_id[:8]}.txt", "text/plain")

    @app.get("/api/jobs/{job_id}/result.json", summary="The whole result record")
    def job_json(job_id: str = PathParam(pattern=JOB_ID.pattern)):
        job = job_or_404(job_id)
        import json

        return download(json.dumps(clean(job.record()), indent=2) + "\n", f"icgen-{job_id[:8]}.json",
                        "application/json")

    @app.get("/api/jobs/{job_id}/deck.cir", summary="A SPICE deck: the design on its technology and testbench")
    def job_deck(job_id: str = PathParam(pattern=JOB_ID.pattern)):
        design, tech, _ = job_design(job_id)
        deck = render_circuit(design, tech) + ".op\n." + Sweep().command() + "\n.end\n"
        return download(deck, f"icgen-{job_id[:8]}.cir", "text/plain")

    @app.get("/api/jobs/{job_id}/opamp.subckt", summary="The op-amp as a .subckt for your own flow")
    def job_subckt(job_id: str = PathParam(pattern=JOB_ID.pattern)):
        design, tech, _ = job_design(job_id)
        return download(render_subckt(design, tech), f"icgen-{job_id[:8]}.subckt", "text/plain")

    @app.post("/api/validate", summary="Validate a pasted answer or design JSON, as `icgen validate` does")
    def validate(body: ValidateRequest = Body()):
        try:
            tech_name = pick("tech", body.tech, techs)
        except LookupError as err:
            return error(422, str(err), "tech")
        parsed = parse_design_text(body.text)
        simulating = body.simulate and parsed.design is not None
        if simulating and not validations.acquire(blocking=False):
            return error(429, "the server is busy validating; try again in a moment", headers={"Retry-After": "2"})
        try:
            from ..sim.validate import validate_parsed

            report = validate_parsed(parsed, techs[tech_name], run_simulation=body.simulate)
        finally:
            if simulating:
                validations.release()
        out = report.to_dict()
        out["simulation"] = None
        out["answer"] = render_answer(report.design) if report.design is not None else None
        sim = report.result
        out.update(status=str(sim.status) if sim else None, reason=sim.reason if sim else None,
                   metrics=sim.metrics.to_dict() if sim and sim.metrics else None,
                   health=sim.health.to_dict() if sim and sim.health else None, bode_svg=None, tech=tech_name)
        if sim is not None and sim.frequency_hz is not None and sim.response is not None:
            gain_db, phase_deg = bode(sim.response)
            out["bode_svg"] = bode_svg(sim.frequency_hz.tolist(), gain_db.tolist(), phase_deg.tolist(),
                                       title="icgen validate")
        return clean(out)

    # ---- read-only pages: the dataset, the model card, the newest eval report
    def unavailable(err: pages.PageUnavailable, field: str) -> JSONResponse:
        return error(404, str(err).splitlines()[0], field)

    def dataset_view() -> dict:
        if dataset is None:
            raise pages.PageUnavailable("this server was started without a dataset (--data none)")
        with dataset_lock:  # computed once: the table is read and summarised on the first request
            if not dataset_cache:
                dataset_cache.append(clean(pages.dataset_view(dataset)))
            return dataset_cache[0]

    def model_view(name: str | None) -> dict:
        name = name or default_model
        if name not in models:
            raise pages.PageUnavailable(f"model {name[:40]!r} is not served here; use one of {', '.join(models)}")
        return pages.model_card_view(model_dirs.get(name), name)

    def html(title: str, build) -> HTMLResponse:
        try:
            return HTMLResponse(pages.render_page(title, build()))
        except pages.PageUnavailable as err:
            return HTMLResponse(pages.render_page(title, [], status_line=str(err).splitlines()[0]), status_code=404)

    @app.get("/api/dataset", summary="The served dataset's summary, as icgen data stats computes it")
    def get_dataset():
        try:
            return dataset_view()
        except pages.PageUnavailable as err:
            return unavailable(err, "data")

    @app.get("/api/dataset/status.svg", summary="The dataset's designs by status, as an SVG bar chart")
    def dataset_status_svg():
        try:
            counted = dataset_view()["counts"]
        except pages.PageUnavailable as err:
            return unavailable(err, "data")
        keys = ("working", "ok_but_unhealthy", "not_amplifier", "failed")
        svg = bar_svg(list(keys), [float(counted.get(k, 0)) for k in keys],
                      title=f"{counted.get('simulated', 0)} simulated designs by status")
        return Response(svg, media_type="image/svg+xml")

    @app.get("/api/dataset/figures/{name}", summary="A figure icgen data stats wrote for the dataset (PNG)")
    def dataset_figure(name: str = PathParam(pattern=r"^[A-Za-z0-9_-]{1,60}\.png$")):
        path = pages.figure_path(dataset, name) if dataset is not None else None
        if path is None:
            return error(404, f"no figure {name!r}; the dataset page lists those icgen data stats wrote", "name")
        return FileResponse(str(path), media_type="image/png")

    @app.get("/dataset", include_in_schema=False)
    def dataset_page():
        return html("dataset", lambda: pages.dataset_sections(dataset_view()))

    @app.get("/api/model-card", summary="The served model's card (README.md), config and metrics, as written")
    def get_model_card(name: str | None = Query(None, max_length=100)):
        try:
            return model_view(name)
        except pages.PageUnavailable as err:
            return unavailable(err, "name")

    @app.get("/model", include_in_schema=False)
    def model_page(name: str | None = Query(None, max_length=100)):
        return html("model card", lambda: pages.model_sections(model_view(name)))

    @app.get("/api/eval-report", summary="The newest eval report (report.md) under the server's reports folder")
    def get_eval_report():
        try:
            return pages.eval_report_view(Path(config.reports))
        except pages.PageUnavailable as err:
            return unavailable(err, "report")

    @app.get("/report", include_in_schema=False)
    def report_page():
        return html("eval report", lambda: pages.report_sections(pages.eval_report_view(Path(config.reports))))

    return app
