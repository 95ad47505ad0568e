"""`icgen serve` under load: a sizing job's latency as the page sees it against the CLI's, and N concurrent requests.

    .venv/bin/python bench/bench_web.py [--requests 20] [--repeats 3] [--model none] [--out bench/results]

1. Latency: the same specs (--gain 38dB --pm 52) sized `--repeats` times through the API (POST /api/size, then polling
   GET /api/jobs/ID until done, as the page does) and as `icgen size ... --json` processes, side by side in one run.
2. Concurrency: `--requests` POST /api/size sent at once to a server with the default limits (ServeConfig: jobs at
   once, queue). Each must be answered (202, then a finished job) or refused with 429; none lost; at least
   min(requests, jobs + queue) answered; and every answered design re-simulated to its reported metrics.
Writes OUT/web.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from icgen.core.design import METRIC_KEYS  # noqa: E402
from icgen.core.tech import load_technology  # noqa: E402
from icgen.sim.validate import validate_text  # noqa: E402
from icgen.web.config import ServeConfig  # noqa: E402

SPECS = {"gain": "38dB", "pm": "52"}


def request(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, results: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "icgen.cli", "serve", "--port", str(port), "--model", model,
                                "--results", results], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            request("GET", base + "/api/info")
            return process, base
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"the server did not start: {process.stderr.read()[-2000:]}") from None
            time.sleep(0.3)


def follow(base: str, job_id: str, timeout_s: float = 900.0) -> dict | None:
    """Poll a job until it is done, renewing its lease as the page does; None if it never finishes."""
    deadline, renewed = time.monotonic() + timeout_s, 0.0
    while time.monotonic() < deadline:
        status, job = request("GET", f"{base}/api/jobs/{job_id}")
        if status != 200:
            return None
        if job["done"]:
            return job
        if time.monotonic() - renewed > 5:
            request("POST", f"{base}/api/jobs/{job_id}/lease")
            renewed = time.monotonic()
        time.sleep(0.2)
    return None


def api_latency(base: str) -> float:
    started = time.perf_counter()
    status, answer = request("POST", base + "/api/size", {"specs": SPECS})
    if status != 202 or follow(base, answer["id"]) is None:
        raise SystemExit(f"the API did not size: {status} {answer}")
    return time.perf_counter() - started


def cli_latency(model: str) -> float:
    started = time.perf_counter()
    args = [str(ROOT / ".venv" / "bin" / "icgen"), "size", "--model", model, "--json"]
    args += [item for name, text in SPECS.items() for item in (f"--{name}", text)]
    subprocess.run(args, capture_output=True, check=False)
    return time.perf_counter() - started


def concurrent(base: str, n: int, tech) -> dict:
    outcomes: list[dict] = [{} for _ in range(n)]
    gate = threading.Barrier(n)

    def one(i: int) -> None:
        gate.wait()
        status, answer = request("POST", base + "/api/size", {"specs": SPECS})
        outcomes[i] = {"status": status}
        if status == 202:
            job = follow(base, answer["id"])
            outcomes[i]["job"] = job

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    answered = [o for o in outcomes if o["status"] == 202 and o.get("job")]
    refused = [o for o in outcomes if o["status"] == 429]
    lost = n - len(answered) - len(refused)
    mismatched = 0
    for o in answered:  # every answered design re-simulated to its reported metrics
        result = o["job"]["result"]
        again = validate_text(result["answer"], tech).result
        if again is None or again.metrics is None or any(
                result["metrics"][k] is not None and abs(getattr(again.metrics, k) - result["metrics"][k])
                > 1e-6 * abs(result["metrics"][k]) for k in METRIC_KEYS):
            mismatched += 1
    return {"requests": n, "answered": len(answered), "refused_429": len(refused), "lost": lost,
            "met": sum(bool(o["job"]["result"]["met"]) for o in answered), "resimulated_mismatch": mismatched,
            "wall_s": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="none", help="Model for both the server and the CLI ('none': retrieval "
                                                        "and local search).")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    config, tech = ServeConfig(), load_technology("ptm65")
    with tempfile.TemporaryDirectory() as results:
        process, base = start_server(args.model, results)
        try:
            api = [api_latency(base) for _ in range(args.repeats)]
            cli = [cli_latency(args.model) for _ in range(args.repeats)]
            load = concurrent(base, args.requests, tech)
        finally:
            process.terminate()
            process.wait(timeout=30)
    expected = min(args.requests, config.jobs + config.queue)
    summary = {"specs": SPECS, "model": args.model, "repeats": args.repeats,
               "api_s": [round(x, 2) for x in api], "cli_s": [round(x, 2) for x in cli],
               "api_over_cli_median": round(sorted(api)[len(api) // 2] / sorted(cli)[len(cli) // 2], 3),
               "limits": {"jobs": config.jobs, "queue": config.queue}, "concurrent": load,
               "ok": load["lost"] == 0 and load["answered"] >= expected and load["resimulated_mismatch"] == 0,
               "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}}
    print(f"{'':<28} {'median s':>9}")
    print(f"{'API (POST + poll to done)':<28} {sorted(api)[len(api) // 2]:>9.2f}")
    print(f"{'CLI (icgen size --json)':<28} {sorted(cli)[len(cli) // 2]:>9.2f}")
    print(f"{args.requests} concurrent requests (jobs {config.jobs}, queue {config.queue}): {load['answered']} answered, "
          f"{load['refused_429']} refused 429, {load['lost']} lost, {load['resimulated_mismatch']} re-simulation "
          f"mismatches, {load['wall_s']} s")
    path = write_result(args.out, "web", summary)
    print(f"wrote {path}")
    if not summary["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
