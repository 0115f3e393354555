"""``client.jobs`` and ``client.models``: train, run scripts, follow jobs, read the registry."""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lepton.client.bodies import checked
from lepton.client.models import Models  # its home is client/models.py
from lepton.schemas import (
    TERMINAL_STATES,
    Job,
    JobState,
    LogChunk,
    MetricPoint,
    ScriptSpec,
    SplitSpec,
    TrainSpec,
)

if TYPE_CHECKING:
    from lepton.client.client import Client

__all__ = ["Jobs", "Models"]


class Jobs:
    def __init__(self, client: Client) -> None:
        self._client = client

    def train(
        self,
        dataset: str,
        *,
        target: str | None = None,
        algorithm: str = "auto",
        params: dict[str, Any] | None = None,
        time_budget_s: float = 300,
        gpus: int = 0,
        cpus: float = 1,
        memory_mb: int | None = None,
        seed: int = 0,
        split: SplitSpec | dict[str, Any] | None = None,
        model: str | None = None,
        max_retries: int = 2,
        workers: int = 1,
    ) -> Job:
        """Submit a train job; it is queued (or failed at once, with the reason, when its inputs
        cannot work). Follow it with :meth:`wait` or :meth:`follow`. ``workers`` > 1 trains
        a PyTorch net (mlp, cnn, lstm, gru) data-parallel on that many workers."""
        with checked("job spec"):
            spec = TrainSpec(
                dataset=dataset,
                target=target,
                algorithm=algorithm,
                params=params or {},
                time_budget_s=time_budget_s,
                gpus=gpus,
                cpus=cpus,
                memory_mb=memory_mb,
                seed=seed,
                split=SplitSpec.model_validate(split or {}),
                model=model,
                max_retries=max_retries,
                workers=workers,
            )
        return self._submit(spec.model_dump(mode="json"))

    def run_script(
        self,
        script: str | os.PathLike[str],
        *,
        dataset: str | None = None,
        split: SplitSpec | Mapping[str, Any] | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        secrets: list[str] | None = None,
        gpus: int = 0,
        cpus: float = 1,
        memory_mb: int | None = None,
        max_retries: int = 0,
        workers: int = 1,
    ) -> Job:
        """Upload a script and run it as a job; inside it ``lepton.log`` and
        ``lepton.save_model`` report to the job, and ``lepton.load_dataset(split="train")``
        reads ``dataset`` divided as ``split`` says (``{"train": 0.8, "validation": 0,
        "test": 0.2}``; 80/10/10 by default). With ``workers`` > 1 the script runs that many
        times at once, in one ``torch.distributed`` process group that is ready when it
        starts."""
        path = Path(script)
        with checked("job spec"):  # checked before anything is uploaded
            spec = ScriptSpec(
                script_name=path.name,
                script_digest="0" * 64,
                dataset=dataset,
                split=SplitSpec.model_validate(split or {}),
                args=args or [],
                env=env or {},
                secrets=secrets or [],
                gpus=gpus,
                cpus=cpus,
                memory_mb=memory_mb,
                max_retries=max_retries,
                workers=workers,
            )
        blob = self._client.blobs.upload(path)
        spec = spec.model_copy(update={"script_digest": blob.digest})
        return self._submit(spec.model_dump(mode="json"))

    def _submit(self, spec: dict[str, Any]) -> Job:
        response = self._client.request("POST", "/api/v1/jobs", json={"spec": spec})
        return Job.model_validate(response.json())

    def get(self, job_id: str) -> Job:
        return Job.model_validate(self._client.request("GET", f"/api/v1/jobs/{job_id}").json())

    def list(self, *, state: JobState | str | None = None, limit: int = 50) -> builtins.list[Job]:
        params = {"state": JobState(state).value if state else None}
        data = self._client.collect("/api/v1/jobs", params, limit=limit)
        return [Job.model_validate(item) for item in data]

    def cancel(self, job_id: str) -> Job:
        return Job.model_validate(
            self._client.request("POST", f"/api/v1/jobs/{job_id}/cancel").json()
        )

    def logs(self, job_id: str, offset: int = 0) -> LogChunk:
        data = self._client.request("GET", f"/api/v1/jobs/{job_id}/logs", params={"offset": offset})
        return LogChunk.model_validate(data.json())

    def metrics(self, job_id: str) -> builtins.list[MetricPoint]:
        data = self._client.request("GET", f"/api/v1/jobs/{job_id}/metrics").json()
        return [MetricPoint.model_validate(item) for item in data]

    def follow(self, job_id: str, *, poll_s: float = 0.5) -> Iterator[tuple[Job, str]]:
        """Yield ``(job, new log text)`` until the job ends and its log is read whole."""
        offset = 0
        while True:
            chunk = self.logs(job_id, offset)
            offset = chunk.offset
            job = self.get(job_id)
            yield job, chunk.text
            if chunk.complete:  # ended, and its last output is in (seconds after the end)
                return
            if not chunk.text:
                time.sleep(poll_s)

    def wait(self, job_id: str, *, timeout_s: float | None = None, poll_s: float = 0.5) -> Job:
        """Block until the job ends; returns it (check ``state`` and ``error``)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if job.state in TERMINAL_STATES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.state} after {timeout_s} s")
            time.sleep(poll_s)
