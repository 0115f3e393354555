"""Environment variables and secret references given to user code (jobs and deployments)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


def _user_env(env: dict[str, str]) -> dict[str, str]:
    taken = sorted(k for k in env if k.startswith("LEPTON_"))
    if taken:
        raise ValueError(
            f"env may not set {', '.join(taken)}: LEPTON_* variables are the platform's own "
            "(the job gets its URL and token from Lepton); pick other names"
        )
    with_nul = sorted(k for k, v in env.items() if "\x00" in v)
    if with_nul:  # the kernel cannot pass one: the process would never start
        raise ValueError(f"env values may not hold a NUL byte: {', '.join(with_nul)}")
    return env


UserEnv = Annotated[
    dict[Annotated[str, Field(pattern=ENV_NAME_PATTERN)], Annotated[str, Field(max_length=32768)]],
    Field(max_length=256),
    AfterValidator(_user_env),
]
"""Variables a user sets for their code: any name but the platform's own ``LEPTON_*``."""

SECRET_REF_PATTERN = r"^(?:[A-Za-z_][A-Za-z0-9_]{0,127}=)?[A-Za-z_][A-Za-z0-9_]{0,127}$"
SECRET_VALUE_MAX = 32768
"""Longest secret value, in characters: a log reader holds back at most this much less one."""


def secret_ref(ref: str) -> tuple[str, str]:
    """``(variable, secret name)`` of a reference: ``NAME`` sets ``NAME``, ``ENV=NAME`` sets
    ``ENV`` from secret ``NAME``."""
    variable, _, name = ref.rpartition("=")
    return variable or name, name


def _user_secrets(refs: list[str]) -> list[str]:
    first: dict[str, str] = {}
    for ref in refs:
        variable, name = secret_ref(ref)
        if variable.startswith("LEPTON_") or name.startswith("LEPTON_"):
            raise ValueError(
                f"secret {ref!r} names a LEPTON_* variable or secret: those are the platform's "
                "own; give the variable another name (ENV=NAME)"
            )
        if variable in first:
            raise ValueError(
                f"secrets {first[variable]!r} and {ref!r} both set {variable}; give each "
                "variable one secret"
            )
        first[variable] = ref
    return refs


UserSecrets = Annotated[
    list[Annotated[str, Field(pattern=SECRET_REF_PATTERN)]],
    Field(max_length=64),
    AfterValidator(_user_secrets),
]
"""Workspace secrets given to user code, by name: ``NAME`` (the variable is named like the
secret) or ``ENV=NAME``. Only names are stored with a job or deployment, never values."""


def env_and_secrets_overlap(env: dict[str, str], secrets: list[str]) -> list[str]:
    """Variables that both ``env`` and ``secrets`` would set."""
    return sorted(set(env) & {secret_ref(ref)[0] for ref in secrets})


def _one_source_per_variable(env: dict[str, str], secrets: list[str]) -> None:
    both = env_and_secrets_overlap(env, secrets)
    if both:
        raise ValueError(f"{', '.join(both)} set by both env and secrets; drop one of the two")
