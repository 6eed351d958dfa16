"""Load test of the HTTP service: offered rate vs achieved rate, latency percentiles, errors, memory, and the
recovery after an overload. Loopback only, bounded in time.

The load generator is ``wrk`` (Debian package ``wrk``: ``apt-get install wrk``; C, epoll) driven by
``benchmarks/open_loop.lua``: requests leave at the times of a Poisson process of the offered rate on a
monotonic clock, on whichever connection is free -- open loop, not "next request when the last answer
came". A request that finds no free connection goes out late and is counted (``late``, ``max_lag_ms``), so
an offered rate that was not really offered shows. (``hey -q`` paces every worker with its own ticker,
all started together: it sends synchronized bursts of ``-c`` requests, which is not the load a service
sees.)

Per offered rate (default 100, 200, 500, 1000 req/s, ``--duration`` seconds each) it records: achieved
requests/s (all answers, and 2xx only), p50/p95/p99/max latency over all answers, status codes, transport
errors (timeouts, resets), and, from a side probe that sends one request every 50 ms during the step,
the latency of refused answers (429/503) and whether they carried ``Retry-After``. Before the first step and
after the last one it records the server's resident memory (whole process tree) and the idle latency
(sequential requests); after the last (overload) step it measures how long the idle latency takes to come
back (``recovery_s``: time until 10 consecutive sequential requests are within 1.5x + 2 ms of idle p50).

    # start the server itself (from source, the model tag from the BentoML store) and test /recommend
    python benchmarks/serve_load.py --model-tag sessionflow-recommender:abc123
    # a built bento, exactly as `sessionflow serve` runs it
    python benchmarks/serve_load.py --bento sessionflow:def456
    # a server that is already running; another route and body
    python benchmarks/serve_load.py --url http://127.0.0.1:3700 --route /chat \\
        --payload '{"messages": [{"role": "user", "content": "a funny sci-fi film from the 90s"}], "k": 10}'

Wrap timing runs in ``flock -x /tmp/sf-cpu.lock`` on a shared machine. Writes ``results/serve_load.json``.
Loopback only; every step is bounded (``--duration`` <= 120 s, wrk's request timeout 10 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RATES = (100, 200, 500, 1000)
DEFAULT_CHAT_PAYLOAD = {
    "messages": [{"role": "user", "content": "a funny sci-fi film from the 90s"}],
    "k": 10,
}


# -- the server ------------------------------------------------------------------------------------------
STARTUP_FAILED = b"Application startup failed"  # BentoML's line when the service cannot start (it retries)


def wait_ready(proc: subprocess.Popen, url: str, log_path: Path, timeout_s: float) -> None:
    """Until ``GET {url}/readyz`` answers 200. Fails at once, naming the log, when the server exits or its log
    says the service could not start (BentoML then starts it again and again instead of exiting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log_path}")
        if log_path.is_file() and STARTUP_FAILED in log_path.read_bytes():
            raise RuntimeError(f"the service could not start; see {log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"server not ready after {timeout_s} s; see {log_path}")
        time.sleep(0.5)


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (it was started with start_new_session), SIGKILL after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def started_server(args: argparse.Namespace, log_path: Path) -> Iterator[tuple[str, psutil.Process | None]]:
    """Yield (base URL, root process) of the server under test; start and stop it unless --url is given."""
    if args.url:
        yield args.url.rstrip("/"), None
        return
    env = {
        **os.environ,
        "BENTOML_DO_NOT_TRACK": "true",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", "1"),
    }
    # absolute: the bento's server runs from its own folder and would not find a relative store
    env["BENTOML_HOME"] = str(Path(env.get("BENTOML_HOME") or REPO / ".bentoml").resolve())
    env["SESSIONFLOW_WORKERS"] = str(args.workers)  # HTTP worker processes (components/serving_settings)
    env.setdefault("SESSIONFLOW_FEEDBACK_DB", str(Path(args.workdir) / "feedback.db"))
    if args.bento:
        target = args.bento
    else:
        env["SESSIONFLOW_MODEL_TAG"] = args.model_tag
        target = "bento.service:SessionRecommender"
    cmd = [args.python, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(args.port)]
    log = log_path.open("wb")
    proc = subprocess.Popen(
        cmd, cwd=args.source, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{args.port}"
    try:
        wait_ready(proc, url, log_path, args.start_timeout)
        yield url, psutil.Process(proc.pid)
    finally:
        stop_process_group(proc)
        log.close()


def tree_rss_mb(root: psutil.Process | None) -> dict[str, float] | None:
    if root is None:
        return None
    procs = [root, *root.children(recursive=True)]
    out = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            out[f"{p.pid}:{p.name()}"] = round(p.memory_info().rss / 2**20, 1)
    return {"total": round(sum(out.values()), 1), **out}


# -- measuring -------------------------------------------------------------------------------------------
def sequential_latencies(url: str, body: bytes, headers: dict[str, str], n: int) -> list[float]:
    """n requests one after the other (ms); non-2xx answers count as failures (inf)."""
    out = []
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                ok = client.post(url, content=body, headers=headers).is_success
            except httpx.HTTPError:
                ok = False
            out.append((time.perf_counter() - t0) * 1000 if ok else float("inf"))
    return out


def recovery_seconds(
    url: str, body: bytes, headers: dict[str, str], idle_p50_ms: float, limit_s: float
) -> tuple[float | None, list[tuple[float, float]]]:
    """Seconds from now until 10 consecutive sequential requests are within 1.5x + 2 ms of the idle p50."""
    threshold = idle_p50_ms * 1.5 + 2.0
    start, streak, trace = time.monotonic(), 0, []
    with httpx.Client(timeout=10) as client:
        while time.monotonic() - start < limit_s:
            t0 = time.perf_counter()
            try:
                ok = client.post(url, content=body, headers=headers).is_success
            except httpx.HTTPError:
                ok = False
            ms = (time.perf_counter() - t0) * 1000 if ok else float("inf")
            trace.append((round(time.monotonic() - start, 3), round(ms, 2)))
            streak = streak + 1 if ms <= threshold else 0
            if streak == 10:
                return round(trace[-10][0], 2), trace
            time.sleep(0.02)
    return None, trace


class SideProbe(threading.Thread):
    """One request every 50 ms during a step: latency and Retry-After of refused answers."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.body, self.headers = url, body, headers
        self.stop = threading.Event()
        self.samples: list[dict[str, Any]] = []

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    resp = client.post(self.url, content=self.body, headers=self.headers)
                    status, retry_after = resp.status_code, resp.headers.get("retry-after")
                except httpx.HTTPError as exc:
                    status, retry_after = f"error: {type(exc).__name__}", None
                ms = (time.perf_counter() - t0) * 1000
                self.samples.append({"status": status, "ms": round(ms, 2), "retry_after": retry_after})
                self.stop.wait(0.05)

    def summary(self) -> dict[str, Any]:
        refused = [s for s in self.samples if s["status"] in (429, 503)]
        return {
            "n": len(self.samples),
            "n_refused": len(refused),
            "refused_with_retry_after": sum(1 for s in refused if s["retry_after"]),
            "refused_max_ms": max((s["ms"] for s in refused), default=None),
            "refused_p99_ms": _pct([s["ms"] for s in refused], 99),
            "statuses": _count(str(s["status"]) for s in self.samples),
        }


LUA = Path(__file__).resolve().parent / "open_loop.lua"
WRK_THREADS = 2


def run_wrk(
    url: str, payload_file: Path, headers: dict[str, str], rate: int, duration: int
) -> dict[str, Any]:
    """One step of open-loop load at ``rate`` req/s for ``duration`` s (wrk + open_loop.lua)."""
    connections = max(50, rate // 4)  # answers slower than 250 ms at full rate make requests late
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s"]
    cmd += ["-s", str(LUA), url, "--", str(rate), str(payload_file)]
    cmd += [f"{k}:{v}" for k, v in headers.items() if k.lower() != "content-type"]
    t0 = time.monotonic()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
        env={**os.environ, "WRK_THREADS": str(WRK_THREADS)},
    )
    elapsed = time.monotonic() - t0
    line = next((x for x in proc.stdout.splitlines()[::-1] if x.startswith("{")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr[-2000:]} {proc.stdout[-2000:]}")
    raw = json.loads(line)
    seconds = raw["duration_us"] / 1e6
    statuses = {str(k): int(v) for k, v in raw["statuses"].items()}
    n_2xx = sum(v for k, v in statuses.items() if k.startswith("2"))
    n_answers = sum(statuses.values())
    transport = sum(v for k, v in raw["errors"].items() if k != "status")
    return {
        "offered_rps": rate,
        "connections": connections,
        "duration_s": round(seconds, 2),
        "wall_s": round(elapsed, 1),
        "achieved_rps": round(n_answers / seconds, 1),
        "achieved_2xx_rps": round(n_2xx / seconds, 1),
        "answers": n_answers,
        "non_2xx": n_answers - n_2xx,
        "transport_errors": transport,
        "errors": raw["errors"],
        "status_codes": statuses,
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p95_ms": round(raw["p95_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "slowest_ms": round(raw["max_us"] / 1000, 2),
        "late_sends": raw["late"],
        "max_lag_ms": round(raw["max_lag_us"] / 1000, 1),
    }


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 2)


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def inspired_chat_payloads(n: int) -> list[dict[str, Any]]:
    """/chat bodies from what real people typed: the first ``n`` seeker utterances of four words or more of
    INSPIRED dev ($SESSIONFLOW_DATA_MIRROR/inspired/dev.tsv), one message each, so the encoder sees new
    text instead of one cached message."""
    sys.path.insert(0, str(REPO))
    from components.dialogue.evaluation import read_inspired

    mirror = Path(os.environ.get("SESSIONFLOW_DATA_MIRROR", REPO.parent / "shared" / "datasets"))
    texts = [
        u.text
        for d in read_inspired(mirror / "inspired" / "dev.tsv")
        for u in d.utterances
        if u.role == "user" and len(u.text.split()) >= 4
    ]
    if len(texts) < n:
        raise SystemExit(f"INSPIRED dev has {len(texts)} seeker messages of 4+ words, fewer than {n}")
    return [{"messages": [{"role": "user", "content": t}], "k": 10} for t in texts[:n]]


def default_payload(base: str, route: str, headers: dict[str, str]) -> dict[str, Any]:
    if route == "/chat":
        return DEFAULT_CHAT_PAYLOAD
    if route == "/recommend":
        # a realistic 10-item session: the service's own cold-start list
        resp = httpx.post(f"{base}/recommend", json={"items": [], "k": 10}, headers=headers, timeout=30)
        resp.raise_for_status()
        return {"items": [i["item_id"] for i in resp.json()["items"]], "k": 10}
    raise SystemExit(f"give --payload for route {route}")


def markdown_table(report: dict[str, Any]) -> str:
    """The steps as a Markdown table (for docs/results.md)."""
    rows = [
        "| offered req/s | achieved req/s (2xx) | p50 ms | p95 ms | p99 ms | max ms | non-2xx "
        "| transport errors | refused: max ms, with Retry-After |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report["steps"]:
        probe = s["probe"]
        refused = (
            f"{probe['refused_max_ms']}, {probe['refused_with_retry_after']}/{probe['n_refused']}"
            if probe["n_refused"]
            else "none refused"
        )
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(s["status_codes"].items()) if not k.startswith("2"))
        rows.append(
            f"| {s['offered_rps']} | {s['achieved_rps']} ({s['achieved_2xx_rps']}) | {s['p50_ms']} | "
            f"{s['p95_ms']} | {s['p99_ms']} | {s['slowest_ms']} | {codes or 0} | {s['transport_errors']} | "
            f"{refused} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running server (nothing is started or stopped)")
    where.add_argument("--model-tag", help="serve bento.service from --source with this BentoML model tag")
    where.add_argument("--bento", help="serve this built bento tag")
    ap.add_argument("--source", default=str(REPO), help="project folder to serve from (default: this one)")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the server (default: this one)")
    ap.add_argument(
        "--workers", type=int, default=1, help="HTTP worker processes of a server this script starts"
    )
    ap.add_argument("--port", type=int, default=3700)
    ap.add_argument("--route", default="/recommend")
    ap.add_argument(
        "--payload", help="JSON body (default: a 10-item session for /recommend, a message for /chat)"
    )
    ap.add_argument(
        "--inspired-messages",
        type=int,
        default=0,
        help="/chat: cycle through this many real seeker messages of INSPIRED dev (needs the dataset mirror)",
    )
    ap.add_argument("--header", action="append", default=[], help="extra header 'Name: value' (repeatable)")
    ap.add_argument(
        "--rates", default=",".join(map(str, DEFAULT_RATES)), help="offered req/s, comma-separated"
    )
    ap.add_argument("--duration", type=int, default=20, help="seconds per offered rate")
    ap.add_argument("--idle-requests", type=int, default=100)
    ap.add_argument("--recovery-limit", type=float, default=30.0)
    ap.add_argument("--start-timeout", type=float, default=180.0)
    ap.add_argument("--workdir", default=str(REPO / "results" / "serve_load"))
    ap.add_argument("--output", default=str(REPO / "results" / "serve_load.json"))
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    if args.duration < 1 or args.duration > 120:
        raise SystemExit("--duration must be 1..120 seconds (bounded runs only)")
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    if any(r < 1 or r > 5000 for r in rates):
        raise SystemExit("--rates must be in 1..5000 req/s")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    headers = {"content-type": "application/json"}
    for h in args.header:
        name, _, value = h.partition(":")
        headers[name.strip()] = value.strip()

    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "route": args.route,
        "workers": None if args.url else args.workers,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "threads_env": {
            k: os.environ.get(k, "1 (set by this script)")
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        },
        "loadavg_before": os.getloadavg(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    log_path = Path(args.workdir) / "server.log"
    with started_server(args, log_path) as (base, root):
        url = base + args.route
        if args.inspired_messages:
            payloads = inspired_chat_payloads(args.inspired_messages)
        else:
            payloads = [
                json.loads(args.payload) if args.payload else default_payload(base, args.route, headers)
            ]
        body = json.dumps(payloads[0]).encode()
        payload_file = Path(args.workdir) / "payload.jsonl"  # one body per line: wrk cycles through them
        payload_file.write_text("".join(json.dumps(p) + "\n" for p in payloads))
        report["payload"] = payloads[0]
        report["n_payloads"] = len(payloads)
        sequential_latencies(url, body, headers, 20)  # warm-up
        idle = sequential_latencies(url, body, headers, args.idle_requests)
        idle_p50 = statistics.median(idle)
        report["idle_before"] = {
            "p50_ms": round(idle_p50, 2),
            "p99_ms": _pct(idle, 99),
            "failed": idle.count(float("inf")),
        }
        report["rss_mb_before"] = tree_rss_mb(root)
        steps = []
        for rate in rates:
            probe = SideProbe(url, body, headers)
            probe.start()
            step = run_wrk(url, payload_file, headers, rate, args.duration)
            probe.stop.set()
            probe.join()
            step["probe"] = probe.summary()
            step["loadavg_after"] = os.getloadavg()
            steps.append(step)
            print(
                f"offered {rate:>5}/s: achieved {step['achieved_rps']:>7}/s "
                f"(2xx {step['achieved_2xx_rps']}/s) "
                f"p50 {step['p50_ms']} p95 {step['p95_ms']} p99 {step['p99_ms']} ms; "
                f"statuses {step['status_codes']} errors {step['transport_errors']}; "
                f"late sends {step['late_sends']} (max lag {step['max_lag_ms']} ms); probe {step['probe']}",
                flush=True,
            )
            if rate != rates[-1]:
                time.sleep(3)  # let the queue drain between steps
        report["steps"] = steps
        recovery, trace = recovery_seconds(url, body, headers, idle_p50, args.recovery_limit)
        report["recovery_s_after_last_step"] = recovery
        report["recovery_trace_head"] = trace[:60]
        time.sleep(5)
        idle_after = sequential_latencies(url, body, headers, args.idle_requests)
        report["idle_after_plus_5s"] = {
            "p50_ms": round(statistics.median(idle_after), 2),
            "p99_ms": _pct(idle_after, 99),
            "failed": idle_after.count(float("inf")),
        }
        report["rss_mb_after"] = tree_rss_mb(root)
    report["loadavg_after"] = os.getloadavg()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(markdown_table(report))
    print(
        f"idle p50 before {report['idle_before']['p50_ms']} ms, 5 s after the last step "
        f"{report['idle_after_plus_5s']['p50_ms']} ms; recovery {recovery} s; "
        f"RSS {report['rss_mb_before'] and report['rss_mb_before']['total']} -> "
        f"{report['rss_mb_after'] and report['rss_mb_after']['total']} MB; wrote {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
