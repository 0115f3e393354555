"""Console page renders in a big workspace: 10,000 jobs and 1,000 model versions.

    .venv/bin/python benchmarks/console.py            # 10,000 jobs, 1,000 model versions
    .venv/bin/python benchmarks/console.py --quick    # 1,000 jobs, 100 versions

Fills a fresh control plane (SQLite, in-process) through its services, signs in to the console,
then renders each list page 20 times and prints the median and 95th percentile, next to the
API's JSON answer for the same page as the reference (the ratio says what the HTML costs over
the data). The issue's budget is 300 ms per list page.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from starlette.testclient import TestClient

from lepton.control.workspaces import FirstStart
from lepton.schemas import JobCreate, ModelRegister, TrainSpec
from lepton.server.app import create_app
from lepton.settings import Settings

RUNS = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the rows")
    args = parser.parse_args()
    jobs, versions = (1_000, 100) if args.quick else (10_000, 1_000)
    with tempfile.TemporaryDirectory(prefix="lepton-bench-console-") as tmp:
        seen: list[Any] = []
        app = create_app(
            Settings(home=Path(tmp) / "home"),
            on_start=lambda c, f: seen.extend([c, f]),
            run_jobs=False,
        )
        with TestClient(app) as api:
            control, first = seen
            assert isinstance(first, FirstStart)
            token = first.token
            fill(api, control, token, jobs, versions)
            api.post("/signin", data={"token": token})
            results = []
            pages = [
                ("/jobs", "/api/v1/jobs?limit=50"),
                ("/jobs?state=queued", "/api/v1/jobs?limit=50&state=queued"),
                (next_page(api, "/jobs"), None),
                ("/models", "/api/v1/models?limit=50"),
                ("/models/bench", "/api/v1/models/bench/versions?limit=50"),
                ("/datasets", "/api/v1/datasets?limit=50"),
                ("/audit", "/api/v1/audit?limit=50"),
                ("/", None),
            ]
            headers = {"Authorization": f"Bearer {token}"}
            for page, reference in pages:
                html = timed(lambda p=page: api.get(p, headers={"Accept": "text/html"}))
                ref = timed(lambda r=reference: api.get(r, headers=headers)) if reference else None
                results.append((page, html, ref))
    print(f"{jobs} jobs, {versions} model versions; {RUNS} renders per page (ms)")
    print(f"{'page':<34} {'median':>8} {'p95':>8}   {'API median':>10} {'ratio':>6}")
    worst = 0.0
    for page, html, ref in results:
        worst = max(worst, html[0])
        tail = f"{ref[0]:>10.1f} {html[0] / ref[0]:>6.2f}" if ref else f"{'':>10} {'':>6}"
        print(f"{page[:34]:<34} {html[0]:>8.1f} {html[1]:>8.1f}   {tail}")
    verdict = "within" if worst < 300 else "OVER"
    print(f"slowest list page: {worst:.1f} ms median, {verdict} the 300 ms budget")
    return 0


def fill(api: TestClient, control: Any, token: str, jobs: int, versions: int) -> None:
    principal = control.tokens.verify(token)
    frame = pd.DataFrame({"x": [float(i) for i in range(60)], "label": ["a", "b"] * 30})
    answer = api.post(
        "/api/v1/datasets/toy/versions?source_name=toy.csv&target=label",
        content=frame.to_csv(index=False).encode(),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201, answer.text
    start = time.perf_counter()
    for _ in range(jobs):
        control.jobs.submit(
            principal, JobCreate(spec=TrainSpec(dataset="toy", algorithm="logistic_regression"))
        )
    print(f"submitted {jobs} jobs in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    artifact = model_artifact(api, token)
    start = time.perf_counter()
    for _ in range(versions):
        control.models.register(
            principal,
            "bench",
            ModelRegister(
                artifact_digest=artifact,
                flavour="sklearn",
                algorithm="LogisticRegression",
                task="classification",
                signature={"inputs": [{"name": "x"}], "outputs": {"classes": ["a", "b"]}},
                metrics={"accuracy": 0.9},
                params={},
            ),
        )
    print(f"registered {versions} versions in {time.perf_counter() - start:.0f} s", file=sys.stderr)


def model_artifact(api: TestClient, token: str) -> str:
    from sklearn.linear_model import LogisticRegression

    from lepton.registry.artifacts import pack
    from lepton.registry.byo import prepare_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
        prepare_model(LogisticRegression().fit(X, ["a", "a", "b", "b"]), folder, None)
        pack(folder, Path(tmp) / "model.zip")
        answer = api.post(
            "/api/v1/blobs",
            content=(Path(tmp) / "model.zip").read_bytes(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/octet-stream",
            },
        )
    assert answer.status_code in (200, 201), answer.text
    digest: str = answer.json()["digest"]
    return digest


def next_page(api: TestClient, path: str) -> str:
    page = api.get(path, headers={"Accept": "text/html"}).text
    found = re.search(r'href="(/jobs\?after=[^"]+)"', page)
    assert found, "the jobs list has a next page"
    return found.group(1).replace("&amp;", "&")


def timed(call: Any) -> tuple[float, float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, answer.text[:300]
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


if __name__ == "__main__":
    sys.exit(main())
