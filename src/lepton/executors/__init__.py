"""Where jobs and replicas run: the Executor protocol, the local (subprocess) executor and the
Ray executor (``LEPTON_EXECUTOR=ray``; Ray is imported only then)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lepton.errors import ConfigError

if TYPE_CHECKING:
    from lepton.executors.local import LocalExecutor
    from lepton.executors.ray import RayExecutor
    from lepton.sandbox import Sandbox
    from lepton.settings import Settings

__all__ = ["EXECUTORS", "open_executor"]

EXECUTORS = ("local", "ray")


def open_executor(settings: Settings, sandbox: Sandbox) -> LocalExecutor | RayExecutor:
    """The executor ``LEPTON_EXECUTOR`` names; with ``ray`` and no ``LEPTON_RAY_ADDRESS``, the
    head ``lepton up --ray`` runs for this home (started if it is not running)."""
    if settings.executor == "local":
        from lepton.executors.local import LocalExecutor

        return LocalExecutor(sandbox, cpu_slots=settings.job_slots)
    if settings.executor == "ray":
        from lepton.executors.ray import RayExecutor, local_head

        return RayExecutor(settings, settings.ray_address or local_head(settings))
    raise ConfigError(
        f"LEPTON_EXECUTOR={settings.executor!r} is not an executor; allowed: "
        + ", ".join(EXECUTORS),
        fix="set LEPTON_EXECUTOR=local (the default) or ray",
    )
