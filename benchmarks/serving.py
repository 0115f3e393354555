"""Serving: Lepton's replica runtime against its peers, one run, side by side, on this machine.

The same two models (a scikit-learn LogisticRegression on 32 features, transport-bound; a 50-tree
RandomForest, batching-sensitive), trained here from generated data with a fixed seed and saved
once; the same JSON payload (one row of 32 floats); the same cores and ``OMP_NUM_THREADS=1``; access
logs off; a warm-up before every level. Servers:

- ``lepton``: ``python -m lepton.serving --model-dir``, at its defaults.
- ``fastapi``: plain FastAPI + uvicorn, a ``def`` endpoint, 1 and 2 workers.
- ``litserve``, ``bentoml``, ``ray-serve``: each at its defaults and tuned as its docs advise
  (benchmarks/_serving_peers/*_app.py say how); installed by ``make bench-peers`` into .venv-bench.
- two ceilings: ``noop``, raw Starlette on uvicorn that reads the body and answers a constant (the
  transport ceiling), and ``in-process``, the model's own batched throughput with no HTTP.

Every server must answer the in-process probabilities for a set of rows before it is timed.
Closed-loop load at concurrency 1, 16, 32, 64, 256 with ``wrk`` (Debian's; ``apt-get install wrk``)
or, when it is missing, a small asyncio client; the output says which. Reports throughput (2xx/s),
p50, p99, errors, server CPU-ms per 1k requests, and ratios to each peer and each ceiling.

    .venv-bench/bin/python benchmarks/serving.py             # everything (~17 minutes)
    .venv/bin/python benchmarks/serving.py --quick           # lepton, noop, fastapi; 2 levels, 2 s
    .venv/bin/python benchmarks/serving.py --kill-replica    # SIGKILL one of two replicas of a
                                                             # deployment under load (--standalone:
                                                             # bare replicas, the script restarts)
    .venv/bin/python benchmarks/serving.py --gateway         # the gateway section alone (~3 min)

The full run ends with the gateway section (benchmarks/_serving_peers/gateway.py): the LR model
through Lepton's gateway, through HAProxy (when installed: the engine comparison) and straight to
the same two replicas at concurrency 1, 32, 256, and the cold start of a deployment with no
replica through the gateway. The gateway's routing table comes from a fake control plane in the
script: those figures are the data path only.

Peers that are not installed (in this interpreter or .venv-bench) are reported as such. Writes
benchmarks/results/serving.json (or ``--json PATH``). These machines are noisy and shared: read the
ratios, not the absolutes.
"""

from __future__ import annotations

import os

# Before numpy is imported anywhere: one BLAS/OpenMP thread, as every server gets.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

HERE = Path(__file__).parent
PEERS = HERE / "_serving_peers"
sys.path.insert(0, str(PEERS))
sys.path.insert(0, str(HERE))
import load  # noqa: E402
from process import START_TIMEOUT_S, Server, post  # noqa: E402
from startup import free_port  # noqa: E402

RESULTS = HERE / "results" / "serving.json"
FEATURES = 32
LEVELS = (1, 16, 32, 64, 256)
QUICK_LEVELS = (1, 32)
IN_PROCESS_BATCHES = (1, 64, 256)
BENCH_PYTHON = HERE.parent / ".venv-bench" / "bin" / "python"
LEPTON_ARGV = ["{python}", "-m", "lepton.serving", "--host", "127.0.0.1", "--port", "{port}"]
LEPTON_ARGV += ["--model-dir", "{model_dir}", "--public"]


@dataclass
class Spec:
    """One server configuration. ``kind``: lepton, ceiling, baseline (FastAPI) or peer."""

    name: str
    variant: str
    kind: str
    argv: list[str]  # {python}, {port}, {model}, {model_dir} are filled in per run
    python: str
    needs: str | None = None  # a module that must import in ``python``
    env: dict[str, str] = field(default_factory=dict)
    models: tuple[str, ...] = ("lr", "rf")

    @property
    def label(self) -> str:
        return self.name if self.variant == "-" else f"{self.name}/{self.variant}"


def specs(quick: bool, peer_python: str) -> list[Spec]:
    me = sys.executable
    uvicorn = ["{python}", "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}"]
    uvicorn += ["--no-access-log", "--log-level", "warning", "--app-dir", str(PEERS)]
    out = [
        Spec(
            "lepton",
            "defaults",
            "lepton",
            LEPTON_ARGV,
            me,
        ),
        Spec("noop", "-", "ceiling", [*uvicorn, "noop_app:app"], me, models=("lr",)),
        Spec("fastapi", "1 worker", "baseline", [*uvicorn, "fastapi_app:app"], me),
    ]
    if quick:
        return out
    out.append(
        Spec(
            "fastapi", "2 workers", "baseline", [*uvicorn, "--workers", "2", "fastapi_app:app"], me
        )
    )
    for variant in ("defaults", "tuned"):
        env = {"BENCH_VARIANT": variant}
        # Batching is what tuning changes; the random forest (the model it matters for) is timed
        # with the tuned peers only, to keep the run near 15 minutes.
        models = ("lr",) if variant == "defaults" else ("lr", "rf")
        out.append(
            Spec(
                "litserve",
                variant,
                "peer",
                ["{python}", "litserve_app.py"],
                peer_python,
                "litserve",
                env,
                models,
            )
        )
        bento = ["{python}", "-m", "bentoml", "serve", "bentoml_app:Model"]
        bento += ["--host", "127.0.0.1", "--port", "{port}", "--working-dir", str(PEERS)]
        out.append(Spec("bentoml", variant, "peer", bento, peer_python, "bentoml", env, models))
        ray_env = dict(env)
        if variant == "tuned":
            ray_env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
        out.append(
            Spec(
                "ray-serve",
                variant,
                "peer",
                ["{python}", "ray_app.py"],
                peer_python,
                "ray.serve",
                ray_env,
                models,
            )
        )
    return out


# ------------------------------------------------------------------------------------ models


def train_models(workdir: Path) -> dict[str, Any]:
    """Both models, fitted once from generated data (seed 0) and saved as Lepton model folders
    (``config.json`` + ``model.skops``), which every server loads."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from lepton.registry.byo import prepare_model

    x, y = make_classification(
        n_samples=4000, n_features=FEATURES, n_informative=12, random_state=0
    )
    fitted = {
        "lr": LogisticRegression(max_iter=1000).fit(x, y),
        "rf": RandomForestClassifier(n_estimators=50, random_state=0).fit(x, y),
    }
    for name, model in fitted.items():
        folder = workdir / name
        folder.mkdir()
        prepare_model(model, folder, None)  # config.json, model.skops, signature.json
    return {"x": x, "models": fitted}


def in_process(model: Any, x: Any, seconds: float) -> dict[str, Any]:
    """Rows/s of ``predict_proba`` at each batch size, and the batch-1 call in ms (best of many:
    the ceiling is what the model can do, not what a noisy neighbour let it do)."""
    rows_per_s = {}
    call_ms = 0.0
    for batch in IN_PROCESS_BATCHES:
        rows = x[:batch]
        model.predict_proba(rows)
        best = float("inf")
        deadline = time.perf_counter() + seconds / len(IN_PROCESS_BATCHES)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            model.predict_proba(rows)
            best = min(best, time.perf_counter() - start)
        rows_per_s[str(batch)] = batch / best
        if batch == 1:
            call_ms = best * 1000
    return {"rows_per_s": rows_per_s, "call_ms": call_ms}


def payload(row: Any) -> bytes:
    return json.dumps({"inputs": [[float(v) for v in row]]}).encode()


def probabilities(answer: bytes) -> list[list[float]]:
    """The class probabilities in a server's answer: ``{"outputs": ...}`` (the peer apps),
    ``{"predictions": ...}`` or a bare list."""
    data = json.loads(answer)
    if isinstance(data, dict):
        for key in ("outputs", "probabilities", "predictions"):
            if key in data:
                data = data[key]
                break
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = [d.get("probabilities", d) for d in data]
    return [[float(v) for v in row] for row in data]


def check_predictions(server: Server, model: Any, x: Any) -> str | None:
    """None when ``server`` answers the in-process probabilities for 8 rows, else why not."""
    expected = model.predict_proba(x[100:108])
    for row, want in zip(x[100:108], expected, strict=True):
        got = probabilities(post(server.url, payload(row), {}))
        if len(got) != 1 or len(got[0]) != len(want):
            return f"answer shaped {len(got)}x{len(got[0]) if got else 0}, expected 1x{len(want)}"
        if max(abs(a - b) for a, b in zip(got[0], want, strict=True)) > 1e-9:
            return f"probabilities differ: got {got[0]}, expected {list(want)}"
    return None


# ------------------------------------------------------------------------------------ running


def installed(spec: Spec) -> bool:
    if spec.needs is None:
        return True
    code = f"import {spec.needs}"
    done = subprocess.run([spec.python, "-c", code], capture_output=True, check=False)
    return done.returncode == 0


def server_env(workdir: Path, spec: Spec, model_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEPTON_", "BENCH_"))}
    env.update(
        PYTHONPATH=str(PEERS),
        BENCH_MODEL=str(model_path / "model.skops"),
        BENCH_PORT=str(port),
        BENTOML_HOME=str(workdir / "bentoml"),
        BENTOML_DO_NOT_TRACK="True",  # no network at run time
        RAY_USAGE_STATS_ENABLED="0",
        LEPTON_HOME=str(workdir / "lepton-home"),
        PYTHONUNBUFFERED="1",
    )
    env.update(spec.env)
    return env


def start(spec: Spec, workdir: Path, model: str, probe: bytes) -> Server:
    port = free_port()
    model_dir = workdir / model
    fill = {"python": spec.python, "port": str(port), "model_dir": str(model_dir)}
    argv = [a.format(**fill) for a in spec.argv]
    safe = spec.label.replace("/", "-").replace(" ", "-")
    server = Server(
        argv,
        server_env(workdir, spec, model_dir, port),
        PEERS,
        workdir / f"{safe}-{model}.log",
        f"http://127.0.0.1:{port}/predict",
    )
    try:
        server.wait_ready(probe, {}, START_TIMEOUT_S)
    except BaseException:
        server.stop()
        raise
    return server


def measure(
    server: Server, client: str, body: bytes, c: int, args: argparse.Namespace
) -> dict[str, Any]:
    load.run(client, server.url, body, c, args.warmup)
    cpu0 = server.cpu_seconds()
    result = load.run(client, server.url, body, c, args.seconds)
    cpu = server.cpu_seconds() - cpu0
    done = result.as_dict()
    done["cpu_ms_per_1k"] = 1e6 * cpu / result.requests if result.requests else None
    return done


def run_server(
    spec: Spec,
    model: str,
    data: dict[str, Any],
    workdir: Path,
    client: str,
    levels: tuple[int, ...],
    args: argparse.Namespace,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "server": spec.label,
        "name": spec.name,
        "variant": spec.variant,
        "kind": spec.kind,
        "model": model,
    }
    if not installed(spec):
        print(f"  {spec.label:24} {model}: not installed", flush=True)
        return {**row, "status": "not installed"}
    body = payload(data["x"][0])
    t0 = time.perf_counter()
    try:
        server = start(spec, workdir, model, body)
    except RuntimeError as exc:
        print(f"  {spec.label:24} {model}: failed to start: {exc}", flush=True)
        return {**row, "status": f"failed to start: {exc}"}
    row["start_s"] = round(time.perf_counter() - t0, 2)
    try:
        if spec.kind != "ceiling":
            problem = check_predictions(server, data["models"][model], data["x"])
            if problem:
                print(f"  {spec.label:24} {model}: wrong predictions: {problem}", flush=True)
                return {**row, "status": f"wrong predictions: {problem}"}
            row["predictions_match"] = True
        row["levels"] = {}
        for c in levels:
            r = measure(server, client, body, c, args)
            row["levels"][str(c)] = r
            print(
                f"  {spec.label:24} {model} c={c:<4} {r['rps']:8.0f} rps  p50 {r['p50_ms']:7.2f} ms"
                f"  p99 {r['p99_ms']:8.2f} ms  errors {r['errors']}",
                flush=True,
            )
        row["status"] = "ok"
    finally:
        server.stop()
    return row


# ------------------------------------------------------------------------------------ report


def rps_of(rows: list[dict[str, Any]], model: str, c: str, figure: str = "rps") -> dict[str, float]:
    """server label -> ``figure`` at concurrency ``c`` for ``model`` (the noop ceiling serves
    both models)."""
    out = {}
    for row in rows:
        mine = row["model"] == model or row["kind"] == "ceiling"
        if row.get("status") == "ok" and mine and c in row["levels"]:
            out[row["server"]] = row["levels"][c][figure]
    return out


def ratios(rows: list[dict[str, Any]], ceilings: dict[str, Any], model: str) -> dict[str, Any]:
    """Lepton's throughput over every other server's, and over both ceilings, per level."""
    out: dict[str, Any] = {}
    rows_per_s = ceilings[model]["rows_per_s"]
    c_model = max(rows_per_s.values())
    for c in sorted({c for r in rows if r.get("levels") for c in r["levels"]}, key=int):
        rps = rps_of(rows, model, c)
        mine = rps.get("lepton/defaults")
        if not mine:
            continue
        level = {f"vs {k}": mine / v for k, v in rps.items() if k != "lepton/defaults" and v}
        level["of in-process"] = mine / c_model
        # CPU per request is the steadier figure on a shared machine: a neighbour's load moves
        # throughput far more than it moves what each request costs.
        cpu = {k: v for k, v in rps_of(rows, model, c, "cpu_ms_per_1k").items() if v}
        if cpu.get("lepton/defaults"):
            mine_cpu = cpu.pop("lepton/defaults")
            level |= {f"cpu per request, {k} / lepton": v / mine_cpu for k, v in cpu.items()}
        if "noop" in rps:
            # The reference's physical limit: transport and model cost add per request.
            level["of combined ceiling"] = mine * (1 / rps["noop"] + 1 / rows_per_s["64"])
        out[c] = level
    return out


def targets(rows: list[dict[str, Any]], ceilings: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with the figures it was judged on."""
    out: dict[str, Any] = {}
    ok = [r for r in rows if r.get("status") == "ok"]
    lepton = {r["model"]: r for r in ok if r["server"] == "lepton/defaults"}
    noop = next((r for r in ok if r["server"] == "noop"), None)
    if "lr" in lepton and noop:
        ceiling = {
            c: lepton["lr"]["levels"][c]["rps"] / noop["levels"][c]["rps"]
            for c in lepton["lr"]["levels"]
            if int(c) >= 32 and c in noop["levels"]
        }
        out["lr >= 0.7 of transport ceiling at c >= 32"] = {
            "met": bool(ceiling) and min(ceiling.values()) >= 0.7,
            "ratios": ceiling,
        }
        if "1" in lepton["lr"]["levels"] and "1" in noop["levels"]:
            bound = noop["levels"]["1"]["p50_ms"] + ceilings["lr"]["call_ms"] + 0.5
            p50 = lepton["lr"]["levels"]["1"]["p50_ms"]
            out["lr p50 at c=1 <= noop p50 + in-process call + 0.5 ms"] = {
                "met": p50 <= bound,
                "p50_ms": p50,
                "bound_ms": bound,
            }
    behind = []
    best_peer: dict[str, float] = {}
    for model, mine in lepton.items():
        for c, level in mine["levels"].items():
            others = {
                r["server"]: r["levels"][c]["rps"]
                for r in ok
                if r["model"] == model and r["kind"] in ("peer", "baseline") and c in r["levels"]
            }
            behind += [f"{model} c={c}: {k}" for k, v in others.items() if v >= level["rps"]]
            peers = [
                r["levels"][c]["rps"]
                for r in ok
                if r["model"] == model and r["kind"] == "peer" and c in r["levels"]
            ]
            if peers and max(peers):
                best_peer[f"{model} c={c}"] = level["rps"] / max(peers)
    out["ahead of every peer at every level"] = {"met": not behind, "behind": behind}
    if best_peer:
        out["x best framework peer (bar: 5)"] = {
            "met": min(best_peer.values()) >= 5,
            "ratios": best_peer,
        }
    return out


def print_tables(rows: list[dict[str, Any]], ceilings: dict[str, Any]) -> None:
    names = {"lr": "Logistic regression (32 features)", "rf": "Random forest (50 trees)"}
    for model, title in names.items():
        levels = sorted({c for r in rows if r.get("levels") for c in r["levels"]}, key=int)
        best = max(ceilings[model]["rows_per_s"].values())
        print(
            f"\n{title}: in-process {ceilings[model]['call_ms']:.3f} ms per 1-row call, "
            f"best {best:,.0f} rows/s batched"
        )
        for c in levels:
            rps = rps_of(rows, model, c)
            mine = rps.get("lepton/defaults")
            print(
                f"  c={c:<4} {'server':24} {'rps':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
                f"{'cpu ms/1k':>9} {'lepton x':>9}"
            )
            for row in rows:
                if row["model"] != model and row["kind"] != "ceiling":
                    continue
                if row.get("status") != "ok":
                    if c == levels[0]:
                        print(f"         {row['server']:24} {row['status']}")
                    continue
                r = row["levels"].get(c)
                if r is None:
                    continue
                cpu = f"{r['cpu_ms_per_1k']:9.0f}" if r["cpu_ms_per_1k"] else f"{'-':>9}"
                ratio = f"{mine / r['rps']:9.2f}" if mine and r["rps"] else f"{'-':>9}"
                print(
                    f"         {row['server']:24} {r['rps']:8.0f} {r['p50_ms']:8.2f} "
                    f"{r['p99_ms']:8.2f} {r['errors']:7d} {cpu} {ratio}"
                )


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


# ------------------------------------------------------------------------------------ main


def benchmark(args: argparse.Namespace, client: str, workdir: Path) -> dict[str, Any]:
    host = machine()  # before the run: its load average says how busy the neighbours were
    data = train_models(workdir)
    ceilings = {
        m: in_process(model, data["x"], 1.0 if args.quick else 3.0)
        for m, model in data["models"].items()
    }
    peer_python = args.peer_python or str(BENCH_PYTHON if BENCH_PYTHON.exists() else sys.executable)
    all_specs = specs(args.quick, peer_python)
    levels = QUICK_LEVELS if args.quick else LEVELS
    rows: list[dict[str, Any]] = []
    for i, model in enumerate(("lr", "rf")):
        order = [s for s in all_specs if model in s.models]
        if i % 2:
            order.reverse()  # rotate: no server always runs first or last on a warming machine
        print(f"\n{model}: {len(order)} servers", flush=True)
        for spec in order:
            rows.append(run_server(spec, model, data, workdir, client, levels, args))
    print_tables(rows, ceilings)
    result = {
        "client": load.client_name(client),
        "quick": args.quick,
        "seconds_per_level": args.seconds,
        "warmup_s": args.warmup,
        "machine": host,
        "peer_python": peer_python,
        "in_process": ceilings,
        "servers": rows,
        "ratios": {m: ratios(rows, ceilings, m) for m in ("lr", "rf")},
        "targets": targets(rows, ceilings),
    }
    if not args.quick:
        result["gateway"] = gateway_section(args, client, workdir, data)
        result["targets"] |= result["gateway"].get("targets", {})
    print_targets(result["targets"])
    return result


def gateway_section(
    args: argparse.Namespace, client: str, workdir: Path, data: dict[str, Any]
) -> dict[str, Any]:
    """The LR model through the gateway, HAProxy and straight to two replicas, and the cold
    start (benchmarks/_serving_peers/gateway.py)."""
    from gateway import gateway_path

    model = data["models"]["lr"]
    try:
        return gateway_path(
            args,
            client,
            workdir,
            payload(data["x"][0]),
            lambda server: check_predictions(server, model, data["x"]),
        )
    except RuntimeError as exc:
        print(f"  gateway: failed: {exc}", flush=True)
        return {"status": f"failed: {exc}"}


def gateway_only(args: argparse.Namespace, client: str, workdir: Path) -> dict[str, Any]:
    """``--gateway``: the gateway section and nothing else."""
    host = machine()
    gateway = gateway_section(args, client, workdir, train_models(workdir))
    result = {
        "mode": "gateway",
        "client": load.client_name(client),
        "seconds_per_level": args.seconds,
        "warmup_s": args.warmup,
        "machine": host,
        "gateway": gateway,
        "targets": gateway.get("targets", {}),
    }
    print_targets(result["targets"])
    return result


def print_targets(found: dict[str, Any]) -> None:
    print("\nTargets:")
    for name, t in found.items():
        shown = {k: v for k, v in t.items() if k != "met"}
        print(
            f"  {'met    ' if t['met'] else 'MISSED '} {name}: {json.dumps(shown, default=str)[:300]}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="lepton, noop, fastapi; 2 levels, ~2 s"
    )
    parser.add_argument(
        "--kill-replica",
        action="store_true",
        help="SIGKILL one of two replicas under load and count failed requests",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="with --kill-replica: two bare replicas, this script restarts the killed one",
    )
    parser.add_argument(
        "--gateway",
        action="store_true",
        help="only the gateway section: gateway vs HAProxy vs direct, and the cold start",
    )
    parser.add_argument("--client", choices=("auto", "wrk", "asyncio"), default="auto")
    parser.add_argument("--seconds", type=float, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, help="warm-up seconds before each level")
    parser.add_argument("--peer-python", help="interpreter for the peers (default: .venv-bench)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = parser.parse_args()
    args.seconds = args.seconds or (2.0 if args.quick else 6.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 2.0)
    client = args.client
    if client == "auto":
        client = "wrk" if load.wrk_path() else "asyncio"
    elif client == "wrk" and not load.wrk_path():
        parser.error("wrk is not installed (apt-get install wrk); use --client asyncio")
    print(f"load generator: {load.client_name(client)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lepton-bench-serving-") as tmp:
        if args.kill_replica:
            from replicas import kill_replica

            result = kill_replica(args, client, Path(tmp), train_models)
        elif args.gateway:
            result = gateway_only(args, client, Path(tmp))
        else:
            result = benchmark(args, client, Path(tmp))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
