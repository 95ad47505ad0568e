"""The read-only pages of `icgen serve` and the size form's objective, margin and corner options, on FastAPI's
TestClient with a fake simulator pool: the dataset page shows what icgen.data.stats computes, the model card and the
newest eval report come back as written and escaped, figures are served by their listed names only, and an unknown
objective, margin or corner set gets 422 naming its field with the core's one-line message."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from icgen.core.errors import IcgenError  # noqa: E402
from icgen.core.objective import OBJECTIVE_NAMES, objective, parse_margin  # noqa: E402
from icgen.core.paths import DEFAULT_DATA_DIR  # noqa: E402
from icgen.data.dataset import Dataset  # noqa: E402
from icgen.data.stats import counts, summary_table  # noqa: E402
from icgen.sizing.config import CornerSizeConfig  # noqa: E402
from icgen.web.app import create_app  # noqa: E402
from icgen.web.config import ServeConfig  # noqa: E402
from tests.test_web_api import BASE, TECH, fake_runner, wait_done  # noqa: E402

SCRIPT = "<script>alert(1)</script>"
needs_data = pytest.mark.skipif(not Dataset(DEFAULT_DATA_DIR).has_table, reason="the shipped dataset is not built")


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Dataset:
    """60 rows of the shipped dataset, one amplifier's health flag carrying a script tag, and two 'figures'."""
    table = Dataset(DEFAULT_DATA_DIR).table.sample(60, random_state=0).reset_index(drop=True)
    ok = table.index[table["status"] == "ok"][0]
    table.loc[ok, "flags"] = SCRIPT
    data = Dataset(tmp_path_factory.mktemp("data") / "tiny")
    data.write_table(table)
    data.stats_dir.mkdir()
    (data.stats_dir / "status.png").write_bytes(b"\x89PNG fake figure")
    (data.stats_dir / "notes.txt").write_text("not a figure")
    return data


def client(tmp_path: Path, runner=None, data_dir=None, model_dirs=None, **config) -> TestClient:
    app = create_app(ServeConfig(results=str(tmp_path / "results"), **config), runner or fake_runner(),
                     {"ptm65": TECH}, tuple(model_dirs or ("none",)), data_dir=data_dir, model_dirs=model_dirs)
    return TestClient(app, base_url=BASE, raise_server_exceptions=False)


# ---- the dataset
@needs_data
def test_the_dataset_api_gives_the_counts_and_metric_distribution_icgen_data_stats_computes(tmp_path, small_dataset):
    table = small_dataset.table
    with client(tmp_path, data_dir=small_dataset.folder) as c:
        view = c.get("/api/dataset").json()
    assert view["counts"] == counts(table) and view["counts"]["simulated"] == 60
    medians = {m["metric"]: m["median"] for m in view["metrics"]}
    assert medians["gain_db"] == pytest.approx(summary_table(table).loc["gain_db", "median"])
    assert {"flag": SCRIPT, "amplifiers": 1} in view["flags"]
    assert view["figures"] == ["status.png"] and view["name"] == "tiny"


@needs_data
def test_the_dataset_page_escapes_text_and_links_only_listed_figures(tmp_path, small_dataset):
    with client(tmp_path, data_dir=small_dataset.folder) as c:
        page = c.get("/dataset")
        figure = c.get("/api/dataset/figures/status.png")
        refused = [c.get("/api/dataset/figures/" + name).status_code
                   for name in ("other.png", "notes.txt", "..%2Fdesigns.parquet", "%2E%2E%2Fstatus.png")]
        svg = c.get("/api/dataset/status.svg").text
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert SCRIPT not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script" not in page.text  # the info pages carry no script at all
    assert re.findall(r'<img class="figure" src="([^"]+)"', page.text) == ["/api/dataset/status.svg",
                                                                         "/api/dataset/figures/status.png"]
    assert figure.status_code == 200 and figure.content == b"\x89PNG fake figure"
    assert all(code in (404, 422) for code in refused), refused
    bars = [float(w) for w in re.findall(r'<rect x="170" y="[^"]+" width="([^"]+)"', svg)]
    c_ = counts(small_dataset.table)
    shown = [c_.get(k, 0) for k in ("working", "ok_but_unhealthy", "not_amplifier", "failed")]
    assert len(bars) == 4 and bars.index(max(bars)) == shown.index(max(shown)) and max(bars) == pytest.approx(420)


def test_without_a_dataset_the_page_and_api_say_so_with_404(tmp_path):
    with client(tmp_path) as c:
        api, page = c.get("/api/dataset"), c.get("/dataset")
        figure = c.get("/api/dataset/figures/status.png")
    assert api.status_code == 404 and api.json()["field"] == "data" and "--data none" in api.json()["error"]
    assert page.status_code == 404 and "--data none" in page.text
    assert figure.status_code == 404


# ---- the model card
def test_the_model_card_comes_back_as_written_and_the_page_escapes_it(tmp_path):
    run = tmp_path / "tiny-model"
    run.mkdir()
    card = f"# tiny-model\n\n{SCRIPT} & <b>bold</b>\n"
    (run / "README.md").write_text(card)
    (run / "config.yaml").write_text("lora_rank: 8\n")
    with client(tmp_path, model_dirs={"tiny-model": run, "none": None}) as c:
        api = c.get("/api/model-card").json()
        page = c.get("/model").text
        none = c.get("/api/model-card", params={"name": "none"})
        unknown = c.get("/api/model-card", params={"name": "<x>"})
        unknown_page = c.get("/model", params={"name": "<x>"})
    assert api == {"name": "tiny-model", "files": [{"file": "README.md", "text": card},
                                                   {"file": "config.yaml", "text": "lora_rank: 8\n"}]}
    assert SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "lora_rank: 8" in page
    assert none.status_code == 404 and none.json()["field"] == "name" and "no model card" in none.json()["error"]
    assert unknown.status_code == 404 and "not served here" in unknown.json()["error"]
    assert unknown_page.status_code == 404 and "<x>" not in unknown_page.text and "&#x27;&lt;x&gt;&#x27;" in \
        unknown_page.text


# ---- the eval report
def test_the_report_page_shows_the_newest_eval_report_escaped(tmp_path):
    reports = tmp_path / "bench-results"
    for name, text, mtime in (("eval-old", "# old report\n", 1_000_000), ("eval-new", f"# new {SCRIPT}\n", 2_000_000),
                              ("not-an-eval", None, 3_000_000)):
        (reports / name).mkdir(parents=True)
        if text is not None:
            (reports / name / "report.md").write_text(text)
            os.utime(reports / name / "report.md", (mtime, mtime))
    with client(tmp_path, reports=str(reports)) as c:
        api = c.get("/api/eval-report").json()
        page = c.get("/report").text
    assert api == {"run": "eval-new", "file": "report.md", "text": f"# new {SCRIPT}\n", "older": ["eval-old"]}
    assert SCRIPT not in page and "# new &lt;script&gt;" in page and "eval-old" in page


def test_without_an_eval_report_the_api_gives_404_naming_it(tmp_path):
    with client(tmp_path, reports=str(tmp_path / "nothing")) as c:
        api, page = c.get("/api/eval-report"), c.get("/report")
    assert api.status_code == 404 and api.json()["field"] == "report" and "icgen eval" in api.json()["error"]
    assert page.status_code == 404


# ---- the size form's options
def _core_message(check) -> str:
    with pytest.raises(IcgenError) as err:
        check()
    return str(err.value).splitlines()[0]


@pytest.mark.parametrize("option, value, check", [
    ("objective", "max-gain", lambda: objective("max-gain")),
    ("margin", "2 furlongs", lambda: parse_margin("2 furlongs")),
    ("corners", "ff_hot", lambda: TECH.corner_set("ff_hot")),
])
def test_an_unknown_objective_margin_or_corner_set_gets_422_with_the_core_message_beside_its_field(
        tmp_path, option, value, check):
    with client(tmp_path) as c:
        answer = c.post("/api/size", json={"specs": {"gain": "38dB"}, option: value})
        assert c.app.state.manager.jobs == {}
    assert answer.status_code == 422
    assert answer.json() == {"error": _core_message(check), "field": option}


def test_the_info_offers_every_objective_and_the_techs_corner_sets(tmp_path):
    with client(tmp_path) as c:
        info = c.get("/api/info").json()
    assert [o["name"] for o in info["objectives"]] == list(OBJECTIVE_NAMES)
    assert info["default_objective"] == "min-power" and parse_margin(info["default_margin"]) == parse_margin("0.5dB,1deg,2%")
    assert info["corner_sets"] == {"ptm65": list(TECH.corner_sets)} and "all" in info["corner_sets"]["ptm65"]


def test_objective_margin_and_corners_reach_the_runner_and_corners_set_the_budget(tmp_path):
    seen = []

    def spy(request, progress, cancel):
        seen.append(request)
        return {"met": False, "cancelled": False, "simulations": 0, "design": None}

    with client(tmp_path, runner=spy) as c:
        plain = wait_done(c, c.post("/api/size", json={"specs": {"gain": "38dB"}}).json()["id"])
        corner = c.post("/api/size", json={"specs": {"gain": "38dB"}, "objective": "max-ugb", "margin": "0",
                                           "corners": "all"}).json()
        wait_done(c, corner["id"])
        given = wait_done(c, c.post("/api/size", json={"specs": {"gain": "38dB"}, "corners": "nominal",
                                                       "budget": 7}).json()["id"])
    assert seen[0]["objective"] == "min-power" and seen[0]["corners"] is None and plain["budget"] == 20
    assert (seen[1]["objective"], seen[1]["margin"], seen[1]["corners"]) == ("max-ugb", "0", "all")
    assert seen[1]["budget"] == CornerSizeConfig.budget_per_corner * len(TECH.corner_set("all")) == 180
    assert given["budget"] == 7


def test_a_corner_job_reports_every_corner_of_the_set_on_the_fake_pool(tmp_path):
    with client(tmp_path) as c:
        started = c.post("/api/size", json={"specs": {"gain": "38dB", "pm": "52"}, "corners": "all", "budget": 60,
                                            "objective": "max-margin"})
        job = wait_done(c, started.json()["id"])
    result = job["result"]
    assert job["state"] == "done" and result["corners"] == "all" and result["objective"] == "max-margin"
    report = result["corner_report"]
    assert [row["corner"]["name"] for row in report["corners"]] == \
        sorted((c.name for c in TECH.corner_set("all")), key=lambda n: n != "tt_1.2V_27C")
    assert report["passed"] and result["met"] and result["simulations"] <= 60
