"""The JSON API of `icgen serve`, on FastAPI's TestClient with a fake simulator pool (no ngspice, no browser): jobs,
the queue limit (429), leases cancelling through the loop's hook, results kept on disk across a restart, body size
(413), bad JSON (422 naming the field), Host and Origin checks, text that comes back as text, and a small fuzz."""
from __future__ import annotations

import json
import random
import re
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from icgen.core.deck import SUBCKT_PORTS, render_answer, render_circuit, render_subckt  # noqa: E402
from icgen.core.design import EXAMPLE_DESIGN  # noqa: E402
from icgen.core.errors import SPEC_OPTIONS, IcgenError  # noqa: E402
from icgen.core.score import SPEC_HELP, specs_from_options  # noqa: E402
from icgen.core.tech import load_technology  # noqa: E402
from icgen.sizing.resources import SizingResources  # noqa: E402
from icgen.web.app import create_app  # noqa: E402
from icgen.web.config import ServeConfig  # noqa: E402
from icgen.web.runner import SizingRunner  # noqa: E402
from icgen.web.svg import bode_svg  # noqa: E402
from tests.conftest import SUMMARY  # noqa: E402
from tests.test_loop import FakePool, fake_metrics  # noqa: E402

BASE = "http://127.0.0.1:8000"
TECH = load_technology("ptm65")


def _table() -> pd.DataFrame:
    return pd.DataFrame([{"index": 0, **EXAMPLE_DESIGN.to_dict(), **fake_metrics(EXAMPLE_DESIGN).to_dict(),
                          "working": True}])


class SlowPool(FakePool):
    """A FakePool that takes `delay_s` a batch: a job that runs long enough to be cancelled."""

    def __init__(self, delay_s: float = 0.02) -> None:
        super().__init__()
        self.delay_s = delay_s

    def map(self, designs, config):
        time.sleep(self.delay_s)
        yield from super().map(designs, config)


def fake_runner(pool_factory=FakePool) -> SizingRunner:
    """The server's real runner (the real loop, spec parsing and record) on a fake simulator pool."""
    return SizingRunner({"ptm65": TECH}, {"none": SizingResources(table=_table())}, pool_factory=pool_factory)


def client(tmp_path: Path, runner=None, **config) -> TestClient:
    app = create_app(ServeConfig(results=str(tmp_path / "results"), **config), runner or fake_runner(),
                     {"ptm65": TECH}, ("none",))
    return TestClient(app, base_url=BASE, raise_server_exceptions=False)


def wait_done(c: TestClient, job_id: str, timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = c.get(f"/api/jobs/{job_id}").json()
        if job["done"]:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


def test_a_sizing_job_reports_the_answer_spec_table_and_operating_point_of_its_best_design(tmp_path):
    with client(tmp_path) as c:
        started = c.post("/api/size", json={"specs": {"gain": "38dB", "pm": "52"}, "budget": 12})
        assert started.status_code == 202
        job = wait_done(c, started.json()["id"])
    result = job["result"]
    assert job["state"] == "done" and result["met"] and 1 <= result["simulations"] <= 12
    from icgen.core.design import Design

    best = Design.from_dict(result["design"])
    expected = fake_metrics(best)
    assert result["answer"] == render_answer(best)
    rows = {row["spec"]: row for row in result["spec_table"]}
    assert rows["gain_db"]["achieved"] == pytest.approx(expected.gain_db) and rows["gain_db"]["pass"]
    assert rows["pm_deg"]["achieved"] == pytest.approx(expected.pm_deg) and rows["pm_deg"]["pass"]
    assert rows["gain_db"]["margin"] == pytest.approx(expected.gain_db - 38)
    assert set(result["health"]["devices"]) == {f"M{i}" for i in range(1, 8)}
    assert result["source"] and result["provenance"]["tech"] == "ptm65"


def test_a_bad_spec_gets_the_clis_message_and_names_its_field(tmp_path):
    with pytest.raises(IcgenError) as cli:
        specs_from_options({"gain": "38 dBm"})
    with client(tmp_path) as c:
        answer = c.post("/api/size", json={"specs": {"gain": "38 dBm", "pm": "52"}})
    assert answer.status_code == 422
    assert answer.json() == {"error": str(cli.value), "field": "gain"}
    assert str(cli.value).startswith("--gain")


@pytest.mark.parametrize("body, field", [
    (b'{"specs": ', "body"),                                  # not JSON
    (b'["gain", "38dB"]', "body"),                            # JSON, not an object
    (b'{"specs": {"gain": 38}}', "specs.gain"),               # a number where the CLI's text goes
    (b'{"specs": {"gian": "38dB"}}', "specs.gian"),           # a misspelt spec
    (b'{"specs": {"gain": "38dB"}, "budget": "lots"}', "budget"),
    (b'{"specs": {"gain": "38dB"}, "budget": 0}', "budget"),
    (b'{"budget": 5}', "specs"),                              # no specs at all
    (b'{"specs": {"gain": "38dB"}, "tech": "/etc/passwd"}', "tech"),  # a path is not a technology name
])
def test_bad_json_gets_422_naming_the_field(tmp_path, body, field):
    with client(tmp_path) as c:
        answer = c.post("/api/size", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field and answer.json()["error"]


def test_requests_beyond_the_queue_get_429_with_a_clear_message_and_are_served_once_a_slot_frees(tmp_path):
    release = threading.Event()

    def blocking(request, progress, cancel):
        release.wait(10)
        return {"met": False, "cancelled": False, "simulations": 0, "design": None}

    with client(tmp_path, runner=blocking, jobs=1, queue=1) as c:
        body = {"specs": {"gain": "38dB"}}
        codes = [c.post("/api/size", json=body).status_code for _ in range(4)]
        refused = c.post("/api/size", json=body)
        release.set()
        assert codes == [202, 202, 429, 429] and refused.status_code == 429
        assert "busy" in refused.json()["error"] and "1 at once, 1 waiting" in refused.json()["error"]
        assert refused.headers["retry-after"]
        deadline = time.monotonic() + 10
        while c.post("/api/size", json=body).status_code != 202:
            assert time.monotonic() < deadline, "a freed slot was never given again"
            time.sleep(0.02)


def test_a_lapsed_lease_cancels_the_job_through_the_loops_hook_and_keeps_its_best_design(tmp_path):
    with client(tmp_path, runner=fake_runner(lambda: SlowPool(0.02)), lease_s=0.3) as c:
        job_id = c.post("/api/size", json={"specs": {"gain": "90dB"}, "budget": 2000}).json()["id"]
        job = wait_done(c, job_id)
    assert job["state"] == "cancelled" and "lease" in job["cancel_reason"]
    assert 0 < job["simulations"] < 2000 and job["result"]["design"] is not None


def test_a_renewed_lease_keeps_the_job_running_past_the_lease(tmp_path):
    with client(tmp_path, runner=fake_runner(lambda: SlowPool(0.02)), lease_s=1.0) as c:
        job_id = c.post("/api/size", json={"specs": {"gain": "90dB"}, "budget": 2000}).json()["id"]
        for _ in range(8):  # 2 s: past the lease, renewed every 0.25 s
            time.sleep(0.25)
            assert c.post(f"/api/jobs/{job_id}/lease").status_code == 200
        assert c.get(f"/api/jobs/{job_id}").json()["state"] == "running"
        c.post(f"/api/jobs/{job_id}/cancel")
        assert wait_done(c, job_id)["cancel_reason"] == "cancelled by the user"


def test_a_job_survives_a_page_reload_and_a_server_restart(tmp_path):
    with client(tmp_path) as c:
        job_id = c.post("/api/size", json={"specs": {"gain": "38dB", "pm": "52"}}).json()["id"]
        first = wait_done(c, job_id)
        assert c.get(f"/api/jobs/{job_id}").json() == first  # the reload: the same job, by id
    with client(tmp_path) as restarted:  # a new server on the same results folder
        again = restarted.get(f"/api/jobs/{job_id}")
        assert again.status_code == 200 and again.json()["result"] == first["result"]
        answer = restarted.get(f"/api/jobs/{job_id}/answer.txt")
        assert answer.text.strip() == first["result"]["answer"] and "attachment" in answer.headers["content-disposition"]
        assert restarted.get(f"/api/jobs/{'0' * 32}").status_code == 404


def test_an_oversized_body_gets_413(tmp_path):
    with client(tmp_path) as c:
        limit = ServeConfig().max_body_bytes
        big = json.dumps({"text": "M1 " * (limit // 3 + 10)})
        answer = c.post("/api/validate", content=big, headers={"content-type": "application/json"})
        assert answer.status_code == 413 and answer.json()["field"] == "body"
        small = c.post("/api/validate", json={"text": "M1 " * 100, "simulate": False})
        assert small.status_code == 200


def test_a_foreign_origin_or_host_is_refused_and_no_job_starts(tmp_path):
    with client(tmp_path) as c:
        body = {"specs": {"gain": "38dB"}}
        foreign = c.post("/api/size", json=body, headers={"origin": "http://evil.example"})
        rebinding = c.get("/api/info", headers={"host": "evil.example:8000"})
        cross_site = c.post("/api/size", json=body, headers={"sec-fetch-site": "cross-site"})
        assert (foreign.status_code, foreign.json()["field"]) == (403, "Origin")
        assert (rebinding.status_code, rebinding.json()["field"]) == (400, "Host")
        assert cross_site.status_code == 403
        assert c.app.state.manager.jobs == {}
        assert c.post("/api/size", json=body, headers={"origin": BASE}).status_code == 202


def test_pasted_script_and_a_model_answer_with_html_come_back_as_plain_text(tmp_path):
    injected = "<script>alert(1)</script>\n<img src=x onerror=alert(2)>"
    html_answer = '<b>M1</b> pch <a href="javascript:alert(3)">x</a>'

    def model_wrote_html(request, progress, cancel):
        return {"met": False, "cancelled": False, "simulations": 0, "design": None, "model_texts": [html_answer]}

    with client(tmp_path, runner=model_wrote_html) as c:
        report = c.post("/api/validate", json={"text": injected})
        job = wait_done(c, c.post("/api/size", json={"specs": {"gain": "38dB"}}).json()["id"])
        page = c.get("/")
    assert report.headers["content-type"].startswith("application/json")
    assert not report.json()["valid"] and "<script>alert(1)</script>" in report.json()["problems"][0]["message"]
    assert job["result"]["model_texts"] == [html_answer]
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self': no inline script runs
    script = (Path(__file__).resolve().parent.parent / "icgen" / "web" / "static" / "app.js").read_text()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)


def test_the_openapi_document_describes_every_spec_with_the_clis_help(tmp_path):
    with client(tmp_path) as c:
        doc = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 404  # no page that pulls assets from a CDN
    assert {"/api/size", "/api/jobs/{job_id}", "/api/jobs/{job_id}/lease", "/api/validate"} <= set(doc["paths"])
    props = doc["components"]["schemas"]["SpecTexts"]["properties"]
    assert set(props) == set(SPEC_OPTIONS.values())
    assert {name: p["description"] for name, p in props.items()} == {n: SPEC_HELP[k] for k, n in SPEC_OPTIONS.items()}


def test_the_page_and_its_assets_are_served_from_the_package_and_nothing_else_is(tmp_path):
    with client(tmp_path) as c:
        page = c.get("/")
        for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
            assert c.get(src).status_code == 200, src
        assert c.get("/static/..%2Fapp.py").status_code == 404 and c.get("/static/config.py").status_code == 404
    assert "http" not in re.sub(r'href="/openapi.json"', "", page.text.split("<body>")[0])  # no CDN in the head


def test_the_bode_svg_draws_every_finite_point_with_gain_falling_across_the_plot():
    frequency = [10 ** (i / 20) for i in range(0, 161)]  # 1 Hz .. 100 MHz
    response = [1000 / complex(1, f / 1e3) for f in frequency]  # 60 dB, one pole at 1 kHz
    import cmath
    import math

    gain = [20 * math.log10(abs(h)) for h in response]
    phase = [math.degrees(cmath.phase(h)) for h in response]
    gain[5] = float("nan")
    svg = bode_svg(frequency, gain, phase)
    traces = re.findall(r'<path class="trace" d="([^"]+)"', svg)
    assert len(traces) == 2 and all(t.count("L") == len(frequency) - 2 for t in traces)  # the NaN point left out
    first_y, last_y = (float(p.split(",")[1]) for p in (traces[0].split()[0], traces[0].split()[-1]))
    assert last_y > first_y  # SVG y grows downwards: the gain falls
    with pytest.raises(ValueError):
        bode_svg([1.0], [0.0], [0.0])


def test_the_subckt_holds_the_decks_devices_with_ground_as_a_port_and_no_testbench():
    subckt = render_subckt(EXAMPLE_DESIGN, TECH)
    deck = render_circuit(EXAMPLE_DESIGN, TECH)
    body = subckt.split(".subckt")[1].splitlines()
    assert body[0].split() == ["icgen_opamp", *SUBCKT_PORTS] and body[-1] == ".ends icgen_opamp"
    devices = [line for line in deck.splitlines() if line[:1] in ("M", "X") or line.startswith(("C0", "R0"))]
    assert [line.replace(" GND", " VSS") for line in devices] == [line for line in body if line[:2] != "VB"][1:-1]
    assert not re.search(r"^\s*\.(lib|include|control)|^CL |^VINP |^LFB ", subckt, re.M)


def test_malformed_requests_never_get_a_500_or_a_stack_trace(tmp_path):
    rng = random.Random(0)
    good = {"specs": {"gain": "38dB", "pm": "52"}, "budget": 5}
    pieces = ["{", "}", "[", "]", '"', ":", ",", "null", "true", "1e999", "-0", "\\u0000", "\x00", "é", " ",
              '"specs"', '"gain"', '"38dB"', '"budget"', "9" * 40, '"text"', "<script>"]
    values = [None, True, -1, 0, 1.5, 10 ** 30, "", "38dB", "x" * 200, [], {}, {"gain": "38dB"}, [1, 2], "\x00",
              "1e999", "NaN", "-38dB", "38dB" * 30, "30nV/rtHz@2kHz", "1%", "0.1%", "12MHz", "1Meg", "all",
              "nominal,tt_1.2V_27C", "max-ugb", "0.5dB,1deg", "tt_9V_27C"]
    fields = ["specs", "budget", "tech", "model", "text", "simulate", "gain", "zzz", "", "objective", "margin",
              "corners"]
    paths = ["/api/size", "/api/validate", "/api/jobs/" + "a" * 32, "/api/jobs/xyz", "/api/jobs/" + "a" * 32 + "/lease",
             "/api/nothing", "/api/info", "/api/dataset", "/api/model-card", "/api/eval-report",
             "/api/dataset/figures/x.png"]
    codes: dict[int, int] = {}
    with client(tmp_path, queue=2) as c:
        for i in range(1000):
            path = rng.choice(paths)
            kind = i % 4
            if kind == 0:
                body = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))).encode("utf-8", "replace")
            elif kind == 1:
                body = json.dumps({rng.choice(fields): rng.choice(values) for _ in range(rng.randint(0, 4))}).encode()
            elif kind == 2:
                specs = {rng.choice(list(SPEC_OPTIONS.values()) + ["zzz"]): rng.choice(values) for _ in range(3)}
                body = json.dumps({**good, "specs": specs, "budget": rng.choice(values),
                                   rng.choice(["objective", "margin", "corners"]): rng.choice(values)}).encode()
            else:
                body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
            headers = {"content-type": rng.choice(["application/json", "text/plain", "application/x-www-form-urlencoded"])}
            right = "POST" if path in ("/api/size", "/api/validate") or path.endswith("/lease") else "GET"
            method = right if rng.random() < 0.85 else rng.choice(["GET", "PUT", "DELETE", "PATCH"])
            answer = c.request(method, path, content=body, headers=headers)
            codes[answer.status_code] = codes.get(answer.status_code, 0) + 1
            if answer.status_code >= 400:
                assert "error" in answer.json() and "Traceback" not in answer.text, answer.text
        unhandled = c.app.state.unhandled
    SUMMARY.append(f"web API fuzz: {sum(codes.values())} malformed requests, status codes "
                   f"{dict(sorted(codes.items()))}, {unhandled} unhandled exceptions")
    assert 500 not in codes and unhandled == 0
    assert codes.get(422, 0) > 50  # the fuzz reached the validation, not only 404s


def test_the_serve_command_refuses_a_bad_option_in_one_line(tmp_path):
    from click.testing import CliRunner

    from icgen.cli import main

    run = CliRunner().invoke(main, ["serve", "--jobs", "0", "--results", str(tmp_path)])
    assert run.exit_code == 2 and run.output.count("\n") == 1 and "--jobs" in run.output
