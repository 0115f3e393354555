"""The replica supervisor: a reconciler that converges each deployment's replicas with its row.

Each pass, for every deployment: the replicas' output is copied into the deployment's log (a
replica is ready once it printed ``ready http://...``, the runtime's signal; its traffic reports,
``lepton-traffic {...}`` lines, go to the traffic store instead); a replica whose
process ended unasked is ``crashed`` and starts again after an exponential backoff (1 s, 2 s,
4 s, ... capped at 60 s; the count starts over once a replica had stayed ready for a minute).
Then the count is converged: too few replicas start, too many drain (SIGTERM: the runtime
finishes what it holds, then exits). An update bumps the deployment's generation and rolls:
one replica of the new generation starts; only once it is ready does one old replica drain;
repeat. So the deployment never has fewer ready replicas than asked, and an update under load
fails no request. A deployment being deleted drains everything, then its rows and folder go.

Everything the supervisor needs is in the store (pids, generations, backoff deadlines, log
offsets), and replicas run in their own session: after a control-plane restart the first pass
finds the live ones again by pid and command line, and restarts the lost ones.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from lepton.control.autoscale import UP_WINDOW_S, Policy, decide, judge_canary
from lepton.control.context import Clock
from lepton.control.deployment_rows import deployment_env, deployment_secrets
from lepton.control.plane import Control
from lepton.control.reconciler import Reconciler
from lepton.control.workdir import (
    deployment_dir,
    deployment_log,
    generation_dir,
    prepare_generation,
    remove_abandoned_builds,
    remove_generation,
    replica_log,
)
from lepton.errors import LeptonError
from lepton.executors.base import ReplicaExecutor, ReplicaLaunch
from lepton.schemas import ReplicaState
from lepton.store.models import DeploymentRevisionRow, DeploymentRow, ReplicaRow

__all__ = ["Backoff", "Supervisor"]

log = logging.getLogger("lepton.deploy")

_READY = b"ready http"
STARTING_INTERVAL_S = 0.1
_LOG_CHUNK = 256 * 1024  # bytes of one replica's output copied per pass


class Backoff:
    """Restart delays: ``base * 2**(failures - 1)``, at most ``cap``; ``stable_s`` of readiness
    forgives earlier failures."""

    def __init__(self, base_s: float = 1.0, cap_s: float = 60.0, stable_s: float = 60.0) -> None:
        self.base_s, self.cap_s, self.stable_s = base_s, cap_s, stable_s

    def delay(self, failures: int) -> float:
        return float(min(self.cap_s, self.base_s * 2 ** max(0, failures - 1)))


class Supervisor(Reconciler):
    name = "deployments"

    def __init__(
        self,
        control: Control,
        executor: ReplicaExecutor,
        *,
        interval_s: float = 0.5,
        now: Clock | None = None,
        backoff: Backoff | None = None,
        drain_grace_s: float = 30.0,
    ) -> None:
        super().__init__(control.ctx, interval_s=interval_s, log=log, now=now)
        self.tokens = control.tokens
        self.secrets = control.secrets
        self.deployments = control.deployments
        self.traffic = control.ctx.traffic
        self.gateway_load = control.ctx.gateway_load
        self.audit = control.audit
        self.executor = executor
        self.backoff = backoff or Backoff()
        self.drain_grace_s = drain_grace_s
        self._signalled: set[tuple[str, int]] = set()  # drains already sent, by replica and pid
        self._starting = False  # a replica was starting at the end of the last pass

    @property
    def home(self) -> Path:
        return self.ctx.settings.home

    def next_interval(self) -> float:
        # A starting replica's ready line is what a held request (a cold start) waits for:
        # look for it every 0.1 s rather than every pass.
        return min(self.interval_s, STARTING_INTERVAL_S) if self._starting else self.interval_s

    def reconcile_once(self) -> None:
        self._starting = False
        with self.ctx.sessions() as session:
            ids = list(session.scalars(select(DeploymentRow.id)))
            for deployment_id in ids:
                deployment = session.get(DeploymentRow, deployment_id)
                if deployment is None:
                    continue
                try:
                    self._reconcile(session, deployment)
                except Exception:  # one broken deployment must not stop the others
                    log.exception("supervising deployment %s failed", deployment_id)
                    session.rollback()

    # --- one deployment ----------------------------------------------------------------------

    def _reconcile(self, session: Session, deployment: DeploymentRow) -> None:
        replicas = list(
            session.scalars(
                select(ReplicaRow)
                .where(ReplicaRow.deployment_id == deployment.id)
                .order_by(ReplicaRow.created_at, ReplicaRow.id)
            )
        )
        live = [r for r in replicas if self._observe(session, deployment, r)]
        if deployment.state == "deleting":
            self._tear_down(session, deployment, live)
            return
        active = [r for r in live if r.state != ReplicaState.draining]
        canary_gen = deployment.canary_generation
        canary = [r for r in active if canary_gen is not None and r.generation == canary_gen]
        current = [r for r in active if r.generation == deployment.generation]
        old = [r for r in active if r not in current and r not in canary]
        if deployment.max_replicas is not None:
            self._autoscale(deployment, ready=sum(r.state == ReplicaState.ready for r in current))
        if canary_gen is not None:
            self._run_canary(session, deployment, canary)
        for replica in current:
            if replica.state == ReplicaState.crashed and _due(replica.restart_at, self.now()):
                self._launch(session, deployment, replica)
        for replica in [r for r in old if r.state == ReplicaState.crashed]:
            self._forget(session, deployment, replica, "replaced by the new generation")
            old.remove(replica)
        ready = sum(r.state == ReplicaState.ready for r in current)
        starting = any(r.state == ReplicaState.starting for r in current)
        if old:
            # Roll: never fewer ready replicas than asked; one new replica at a time.
            if ready + len(old) > deployment.replicas:
                self._drain(session, deployment, _drain_order(old)[0])
            elif len(current) < deployment.replicas and not starting:
                self._add(session, deployment)
        elif len(current) < deployment.replicas:
            for _ in range(deployment.replicas - len(current)):
                self._add(session, deployment)
        elif len(current) > deployment.replicas:
            for replica in _drain_order(current)[: len(current) - deployment.replicas]:
                self._drain(session, deployment, replica)
        session.commit()
        self._starting |= any(r.state == ReplicaState.starting for r in live)
        self._starting |= len(current) < deployment.replicas
        self._clean_generations(session, deployment)

    # --- autoscaling and canaries ------------------------------------------------------------

    def _autoscale(self, deployment: DeploymentRow, *, ready: int) -> None:
        """Set the desired count from the gateway's load (``control/autoscale.py``)."""
        assert deployment.max_replicas is not None
        policy = Policy(
            min_replicas=deployment.min_replicas or 0,
            max_replicas=deployment.max_replicas,
            target_inflight=deployment.target_inflight,
            scale_down_delay_s=deployment.scale_down_delay_s,
            idle_timeout_s=deployment.idle_timeout_s,
        )
        longest = max(policy.scale_down_delay_s, policy.idle_timeout_s, UP_WINDOW_S) + 5
        samples = self.gateway_load.window(deployment.id, longest)
        answered = self.traffic.answered_at(deployment.id)
        direct = (self.now() - answered).total_seconds() if answered is not None else None
        decision = decide(
            policy, deployment.replicas, samples, time.monotonic(), last_direct_answer_s=direct
        )
        if decision is None:
            return
        deployment.replicas = decision.replicas
        deployment.scaled_at = self.now()
        deployment.scale_reason = decision.reason
        self._event(deployment, decision.reason)

    def _run_canary(
        self, session: Session, deployment: DeploymentRow, canary: list[ReplicaRow]
    ) -> None:
        """Keep the canary's replica running; roll it back when it does worse than stable."""
        assert deployment.canary_generation is not None
        revision = session.get(DeploymentRevisionRow, (deployment.id, deployment.canary_generation))
        if revision is None:  # its revision is gone: nothing to run
            deployment.canary_generation = deployment.canary_share = None
            return
        samples = self.gateway_load.window(deployment.id, deployment.canary_window_s)
        verdict = judge_canary(
            samples,
            error_margin=deployment.canary_error_margin,
            latency_margin=deployment.canary_latency_margin,
        )
        if verdict is not None and verdict.failed:
            generation = deployment.canary_generation
            self.deployments.end_canary(session, deployment)
            why = f"canary generation {generation} rolled back automatically: {verdict.reason}"
            self._event(deployment, why)
            self.audit.system(
                session,
                workspace_id=deployment.workspace_id,
                action="deployment.canary_rollback",
                resource=f"deployment/{deployment.name}",
            )
            return
        for replica in canary:
            if replica.state == ReplicaState.crashed and _due(replica.restart_at, self.now()):
                self._launch(session, deployment, replica)
        if not canary:
            self._add(session, deployment, generation=deployment.canary_generation)

    def _observe(self, session: Session, deployment: DeploymentRow, replica: ReplicaRow) -> bool:
        """Update ``replica`` from its process and output; False once its row is gone."""
        if replica.pid is None:
            return True
        status = self.executor.replica_status(replica.pid, self._marker(deployment))
        saw_ready = self._copy_output(deployment, replica)
        if status.alive:
            if replica.state == ReplicaState.starting and saw_ready is not None:
                replica.state = ReplicaState.ready
                replica.ready_at = self.now()
                replica.url = _own_url(saw_ready)
                self._event(
                    deployment,
                    f"replica {replica.id} (generation {replica.generation}) "
                    f"is ready, pid {replica.pid}",
                )
            elif replica.state == ReplicaState.draining:
                self._signal_drain(deployment, replica)  # again after a control-plane restart
            return True
        code = "unknown" if status.exit_code is None else str(status.exit_code)
        if replica.state == ReplicaState.draining:
            self._forget(session, deployment, replica, f"drained and stopped (exit code {code})")
            return False
        now = self.now()
        replica.failures = 1 if self._was_stable(replica) else replica.failures + 1
        delay = self.backoff.delay(replica.failures)
        replica.state = ReplicaState.crashed
        replica.pid = None
        replica.restart_at = now + timedelta(seconds=delay)
        tail = _tail(replica_log(self.home, deployment.id, replica.id))
        masker = self.secrets.masker("deployment", deployment.id, deployment.secret_mask)
        tail = masker.text(tail) if masker else tail
        replica.last_error = f"exited with code {code}" + (f": {tail}" if tail else "")
        self._event(
            deployment,
            f"replica {replica.id} crashed (exit code {code}); restarting in {delay:.0f} s",
        )
        return True

    def _was_stable(self, replica: ReplicaRow) -> bool:
        ready_at = replica.ready_at
        return ready_at is not None and (self.now() - ready_at).total_seconds() >= (
            self.backoff.stable_s
        )

    def _add(
        self, session: Session, deployment: DeploymentRow, *, generation: int | None = None
    ) -> None:
        replica = ReplicaRow(
            id=uuid.uuid4().hex[:8],
            deployment_id=deployment.id,
            generation=generation or deployment.generation,
            state=ReplicaState.starting,
            restarts=0,
            failures=0,
            log_offset=0,
            created_at=self.now(),
        )
        session.add(replica)
        self._launch(session, deployment, replica, first=True)

    def _launch(
        self,
        session: Session,
        deployment: DeploymentRow,
        replica: ReplicaRow,
        *,
        first: bool = False,
    ) -> None:
        # What this replica's generation runs: the deployment's own settings, or a canary's
        # revision beside them.
        spec: DeploymentRow | DeploymentRevisionRow = deployment
        if replica.generation != deployment.generation:
            spec = session.get(DeploymentRevisionRow, (deployment.id, replica.generation)) or spec
        try:
            source = prepare_generation(self.ctx, session, deployment, spec)
            secrets = self.secrets.resolve(
                session, deployment.workspace_id, deployment_secrets(spec)
            )
        except LeptonError as exc:
            # Nothing to serve (the artifact is gone or damaged) or a secret is gone: say so,
            # retry with backoff.
            replica.failures += 1
            replica.state = ReplicaState.crashed
            replica.restart_at = self.now() + timedelta(
                seconds=self.backoff.delay(replica.failures)
            )
            replica.last_error = deployment.error_message = f"{exc.message}. {exc.fix}".strip()
            self._event(deployment, f"cannot start replica {replica.id}: {exc.message}")
            return
        deployment.error_message = None
        # Each life gets a fresh output file (the last one was copied to the deployment log),
        # so a crash's message is this life's last lines.
        self._copy_output(deployment, replica)
        replica_log(self.home, deployment.id, replica.id).unlink(missing_ok=True)
        replica.log_offset = 0
        hashes = self.deployments.token_hashes(session, deployment)
        deployment.secret_mask = self.secrets.add_mask(
            "deployment", deployment.id, deployment.secret_mask, secrets.values()
        )
        args = [
            "--host",
            self.ctx.settings.host,
            "--port",
            str(deployment.port),
            "--reuse-port",
            "--own-port",
            *source,
            "--name",
            deployment.name,
            "--max-batch-size",
            str(spec.max_batch_size),
            "--max-wait-ms",
            f"{spec.max_wait_ms:g}",
            "--timeout-s",
            f"{spec.timeout_s:g}",
            "--max-rows",
            str(spec.max_rows),
            "--traffic-interval-s",
            f"{self.ctx.settings.traffic_interval_s:g}",
        ]
        if deployment.public:
            args.append("--public")
        launch = ReplicaLaunch(
            args=tuple(args),
            env={
                **deployment_env(spec),  # first: the platform's own variable wins
                **secrets,
                **({"LEPTON_REPLICA_TOKEN_HASHES": ",".join(hashes)} if hashes else {}),
            },
            log_path=replica_log(self.home, deployment.id, replica.id),
            marker=self._marker(deployment),
            readable=(generation_dir(self.home, deployment.id, spec.generation),),
            cpus=spec.cpus,
            memory_mb=spec.memory_mb,
            gpus=spec.gpus,
        )
        replica.pid = self.executor.start_replica(launch)
        if not first:
            replica.restarts += 1
        replica.state = ReplicaState.starting
        replica.started_at = self.now()
        replica.ready_at = None  # the backoff forgives only readiness of this life
        replica.restart_at = None
        replica.url = None
        self._event(
            deployment,
            f"replica {replica.id} (generation {replica.generation}) started, pid {replica.pid}",
        )

    def _drain(self, session: Session, deployment: DeploymentRow, replica: ReplicaRow) -> None:
        if replica.pid is None:  # crashed, waiting for its restart: nothing runs
            self._forget(session, deployment, replica, "removed")
            return
        replica.state = ReplicaState.draining
        self._event(deployment, f"replica {replica.id} draining")
        self._signal_drain(deployment, replica)

    def _signal_drain(self, deployment: DeploymentRow, replica: ReplicaRow) -> None:
        assert replica.pid is not None
        key = (replica.id, replica.pid)
        if key not in self._signalled:
            self._signalled.add(key)
            self.executor.stop_replica(replica.pid, self._marker(deployment), self.drain_grace_s)

    def _forget(
        self, session: Session, deployment: DeploymentRow, replica: ReplicaRow, why: str
    ) -> None:
        self._copy_output(deployment, replica)  # its last traffic report too
        self.traffic.forget_replica(deployment.id, replica.id)
        self._event(deployment, f"replica {replica.id} {why}")
        session.delete(replica)
        replica_log(self.home, deployment.id, replica.id).unlink(missing_ok=True)

    def _tear_down(
        self, session: Session, deployment: DeploymentRow, live: list[ReplicaRow]
    ) -> None:
        self.tokens.revoke_in(session, deployment.token_id)
        for replica in live:
            if replica.state != ReplicaState.draining:
                self._drain(session, deployment, replica)
        session.flush()
        remaining = session.scalars(
            select(ReplicaRow.id).where(ReplicaRow.deployment_id == deployment.id)
        ).first()
        if remaining is None:
            session.delete(deployment)
            session.commit()
            self.traffic.forget(deployment.id)
            self.gateway_load.forget(deployment.id)
            shutil.rmtree(deployment_dir(self.home, deployment.id), ignore_errors=True)
            log.info("deployment %s (%s) deleted", deployment.name, deployment.id)
            return
        session.commit()

    def _clean_generations(self, session: Session, deployment: DeploymentRow) -> None:
        """Remove the folders of generations no replica uses any more, and what builds cut
        short by a kill left."""
        root = deployment_dir(self.home, deployment.id)
        if not root.exists():
            return
        remove_abandoned_builds(self.home, deployment.id)
        used = set(
            session.scalars(
                select(ReplicaRow.generation).where(ReplicaRow.deployment_id == deployment.id)
            )
        )
        used.add(deployment.generation)
        if deployment.canary_generation is not None:
            used.add(deployment.canary_generation)
        for folder in root.glob("gen-*"):
            number = folder.name.removeprefix("gen-")
            if number.isdigit() and int(number) not in used:
                remove_generation(self.home, deployment.id, int(number))

    # --- output ------------------------------------------------------------------------------

    def _marker(self, deployment: DeploymentRow) -> str:
        return str(deployment_dir(self.home, deployment.id)) + "/"

    def _copy_output(self, deployment: DeploymentRow, replica: ReplicaRow) -> bytes | None:
        """Append the replica's new complete lines to the deployment log, tagged with its id,
        but for its traffic reports, which go to the traffic store; the runtime's ``ready``
        line when they include it."""
        path = replica_log(self.home, deployment.id, replica.id)
        try:
            with path.open("rb") as f:
                f.seek(replica.log_offset)
                data = f.read(_LOG_CHUNK)
        except OSError:
            return None
        end = data.rfind(b"\n") + 1
        if end == 0:
            return None
        replica.log_offset += end
        now = self.now()
        taken = (
            self.traffic.take(deployment.id, replica.id, line, now)
            for line in data[:end].splitlines()
        )
        lines = [line for line in taken if line is not None]
        if lines:
            tag = f"[{replica.id}] ".encode()
            with deployment_log(self.home, deployment.id).open("ab") as out:
                out.write(b"".join(tag + line + b"\n" for line in lines))
        return next((line for line in lines if line.startswith(_READY)), None)

    def _event(self, deployment: DeploymentRow, text: str) -> None:
        path = deployment_log(self.home, deployment.id)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = self.now().strftime("%Y-%m-%d %H:%M:%S")
        with path.open("a") as f:
            f.write(f"--- {stamp} {text} ---\n")


def _own_url(ready: bytes) -> str | None:
    """The replica's own address from ``ready http://H:P replica http://H:Q``."""
    words = ready.decode(errors="replace").split()
    if len(words) >= 4 and words[2] == "replica" and words[3].startswith("http"):
        return words[3][:200]
    return None


def _due(moment: datetime | None, now: datetime) -> bool:
    return moment is None or moment <= now


def _drain_order(replicas: list[ReplicaRow]) -> list[ReplicaRow]:
    """Which replicas to give up first: crashed, then starting, then the newest ready ones."""
    rank = {ReplicaState.crashed: 0, ReplicaState.starting: 1, ReplicaState.ready: 2}
    newest_first = sorted(replicas, key=lambda r: r.created_at, reverse=True)
    return sorted(newest_first, key=lambda r: rank.get(ReplicaState(r.state), 3))


def _tail(path: Path, lines: int = 5) -> str:
    """The last lines a replica wrote: a load failure's message is there."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - 4096))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[:2000]
