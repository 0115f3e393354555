"""Startup cost: ``import lepton``, ``lepton --help``, and ``lepton up`` until ``/healthz`` answers.

The claim (STYLE.md, 3): ``import lepton`` and ``lepton --help`` stay under 0.3 s, and importing
``lepton`` loads no heavy library (torch, ray, shap, captum, onnxruntime, sklearn, pandas).
Every figure is the median of fresh processes, next to the bare interpreter's start measured in
the same run: these machines are noisy, so read the differences and ratios, not the absolutes.

    .venv/bin/python benchmarks/startup.py           # 7 runs per figure
    .venv/bin/python benchmarks/startup.py --quick   # 3 runs per figure

Writes benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

PYTHON = sys.executable
LEPTON = str(Path(sys.executable).parent / "lepton")
RESULTS = Path(__file__).with_name("results") / "startup.json"
TARGET_S = 0.3
HEAVY = ("torch", "ray", "shap", "captum", "onnxruntime", "sklearn", "pandas")
START_TIMEOUT_S = 60.0  # a hung server fails the benchmark instead of stalling it


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")}
    env.update(overrides)
    return env


def timed(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_of(runs: int, measure: Callable[[], float]) -> float:
    measure()  # warm the OS page cache: every later run starts from the same state
    return statistics.median(measure() for _ in range(runs))


def heavy_modules_loaded() -> list[str]:
    code = (
        "import sys, json, lepton; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([PYTHON, "-c", code], check=True, capture_output=True, text=True)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def import_offenders(top: int = 8) -> list[tuple[str, float]]:
    """Top-level packages by import time under ``import lepton`` (self times summed per package,
    so a package's lazily imported submodules count towards it, and nothing counts twice)."""
    out = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", "import lepton"],
        check=True,
        capture_output=True,
        text=True,
    )
    totals: dict[str, float] = {}
    for line in out.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        package = parts[2].split(".")[0]
        totals[package] = totals.get(package, 0.0) + int(parts[0]) / 1e6
    return sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def time_up(home: Path, port: int) -> float:
    """Seconds from launching ``lepton up`` to the first 200 from ``/healthz``; then stops it."""
    env = clean_env(LEPTON_HOME=str(home), LEPTON_HOST="127.0.0.1", LEPTON_PORT=str(port))
    url = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [LEPTON, "up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(int(START_TIMEOUT_S / 0.01)):
            if healthy(url):
                return time.perf_counter() - start
            if proc.poll() is not None:
                raise RuntimeError(f"lepton up exited with {proc.returncode}")
            time.sleep(0.01)
        raise RuntimeError(f"lepton up did not answer within {START_TIMEOUT_S} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_starts(runs: int) -> tuple[float, float]:
    """Median first start (fresh home each run) and median restart (same home)."""
    first, again = [], []
    with tempfile.TemporaryDirectory(prefix="lepton-bench-") as tmp:
        for i in range(runs):
            home = Path(tmp) / f"home-{i}"
            port = free_port()
            first.append(time_up(home, port))
            again.append(time_up(home, port))
    return statistics.median(first), statistics.median(again)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per figure instead of 7")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else 7

    bare = median_of(runs, lambda: timed([PYTHON, "-c", "pass"]))
    with_lepton = median_of(runs, lambda: timed([PYTHON, "-c", "import lepton"]))
    env = clean_env(LEPTON_HOME=tempfile.gettempdir() + "/lepton-bench-help")
    help_s = median_of(runs, lambda: timed([LEPTON, "--help"], env))
    heavy = heavy_modules_loaded()
    offenders = import_offenders()
    up_first, up_again = server_starts(max(1, runs // 2))
    import_s = with_lepton - bare

    rows = [
        ("python -c pass (baseline)", bare, None),
        ("import lepton (minus baseline)", import_s, import_s <= TARGET_S),
        ("lepton --help (whole process)", help_s, help_s <= TARGET_S),
        ("lepton --help (minus baseline)", help_s - bare, help_s - bare <= TARGET_S),
        ("lepton up -> /healthz, first start", up_first, None),
        ("lepton up -> /healthz, restart", up_again, None),
    ]
    print(
        f"startup on {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, median of {runs} runs (servers: {max(1, runs // 2)})"
    )
    print(f"{'what':<38} {'seconds':>8}  target {TARGET_S} s")
    for name, seconds, ok in rows:
        verdict = "" if ok is None else ("ok" if ok else "OVER")
        print(f"{name:<38} {seconds:8.3f}  {verdict}")
    print(f"{'import lepton / python -c pass':<38} {with_lepton / bare:8.2f}x")
    print(f"heavy modules loaded by import lepton: {', '.join(heavy) or 'none'}")
    print("import time by package (s): " + ", ".join(f"{name} {s:.3f}" for name, s in offenders))

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "runs": runs,
                "target_s": TARGET_S,
                "python_pass_s": round(bare, 4),
                "import_lepton_s": round(import_s, 4),
                "lepton_help_s": round(help_s, 4),
                "lepton_help_minus_python_s": round(help_s - bare, 4),
                "up_first_start_to_healthz_s": round(up_first, 4),
                "up_restart_to_healthz_s": round(up_again, 4),
                "heavy_modules_loaded": heavy,
                "import_offenders_s": dict(offenders),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 0 if not heavy else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
