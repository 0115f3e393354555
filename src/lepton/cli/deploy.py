"""``lepton deploy``, ``lepton deployment list|show|logs|scale|update|history|rollback|rm`` and
``lepton photon push|list|rm``."""

from __future__ import annotations

import json as jsonlib
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lepton.cli.job import SECRET_HELP, parse_env, parse_memory
from lepton.cli.output import console, nonblank, print_json, table, when
from lepton.errors import InvalidRequest
from lepton.limits import DEFAULT_MAX_ROWS, MAX_ROWS_CEILING
from lepton.schemas.deployments import DEFAULT_TARGET_INFLIGHT

if TYPE_CHECKING:
    from lepton.client import Client
    from lepton.schemas import Deployment, DeploymentRevision, DeploymentTraffic

app = typer.Typer(help="Deployments: models and photons served as HTTP APIs.", no_args_is_help=True)

_PUBLIC = "[bold red]PUBLIC[/] (no token)"
_ENV_HELP = (
    "K=V: a variable the replicas get (repeatable; not LEPTON_*; shown with the deployment)."
)


def deploy(
    model: str = typer.Argument(None, help="Model to serve: NAME, NAME@3 or NAME@production."),
    photon: str = typer.Option(None, help="Serve a pushed photon instead: NAME or NAME@N."),
    name: str = typer.Option(None, help="Deployment name.", show_default="the model's or photon's"),
    replicas: int = typer.Option(
        1, min=1, max=32, help="Replica processes (with autoscaling: how many start)."
    ),
    min_replicas: int = typer.Option(
        None, min=0, max=32, help="Autoscale from this many (0: to zero when idle)."
    ),
    max_replicas: int = typer.Option(
        None, min=1, max=32, help="Autoscale up to this many on the load through the gateway."
    ),
    target_inflight: float = typer.Option(
        DEFAULT_TARGET_INFLIGHT,
        min=0.01,
        max=10_000,
        help="Requests in flight per replica aimed at.",
    ),
    scale_down_delay: float = typer.Option(
        60, min=0, max=86_400, help="Seconds of lower load before a replica goes."
    ),
    idle_timeout: float = typer.Option(
        300, min=1, max=7 * 86_400, help="Seconds without a request before scaling to zero."
    ),
    hold_timeout: float = typer.Option(
        60, min=0.1, max=600, help="Seconds the gateway holds a request while a replica starts."
    ),
    max_batch_size: int = typer.Option(64, min=1, max=4096, help="Most requests per model call."),
    max_wait_ms: float = typer.Option(0, min=0, max=1000, help="Wait this long to fill a batch."),
    timeout: float = typer.Option(30, min=0.001, max=3600, help="Request timeout, seconds."),
    max_rows: int = typer.Option(
        DEFAULT_MAX_ROWS, min=1, max=MAX_ROWS_CEILING, help="Most rows one request may carry."
    ),
    cpus: float = typer.Option(0, min=0, max=256, help="CPU cores each replica reserves."),
    memory: str = typer.Option(
        None, help="Memory each replica needs, e.g. 2G or 512M.", show_default="no reservation"
    ),
    gpus: int = typer.Option(0, min=0, max=16, help="GPUs each replica gets."),
    public: bool = typer.Option(
        False, "--public", help="Serve WITHOUT a token: anyone who reaches the port may call it."
    ),
    env: list[str] = typer.Option(None, "--env", "-e", help=_ENV_HELP),
    env_file: Path = typer.Option(
        None, "--env-file", exists=True, dir_okay=False, help="A file of K=V lines."
    ),
    secret: list[str] = typer.Option(None, "--secret", help=SECRET_HELP),
    detach: bool = typer.Option(False, "--detach", help="Return at once; do not wait for ready."),
) -> None:
    """Serve a model version or a photon, wait until it is ready, print how to call it."""
    from lepton.client import Client

    variables = parse_env(list(env or []), env_file)
    client = Client()
    created = client.deployments.create(
        model,
        photon=photon,
        name=name,
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_inflight=target_inflight,
        scale_down_delay_s=scale_down_delay,
        idle_timeout_s=idle_timeout,
        hold_timeout_s=hold_timeout,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        timeout_s=timeout,
        max_rows=max_rows,
        cpus=cpus,
        memory_mb=parse_memory(memory),
        gpus=gpus,
        public=public,
        env=variables,
        secrets=list(secret or []),
        wait=False,
    )
    serves = created.model or created.photon
    console.print(f"Deployment [bold]{created.name}[/] of {serves}: {_address(created)}")
    if created.token:
        console.print("Inference token (shown only now; keep it):")
        console.print(f"\n    {created.token}\n", soft_wrap=True)
    else:
        console.print(f"Access: {_PUBLIC}: anyone who can reach this port may call it.")
    if detach:
        console.print(f"Not waiting. Follow it: lepton deployment show {created.name}")
        return
    with console.status(f"waiting for {replicas} replica(s) to be ready..."):
        ready = client.deployments.wait(created.name)
    console.print(f"Ready: {ready.ready_replicas} of {ready.replicas} replica(s).")
    console.print("Call it:")
    console.print(_curl(client, ready, created.token), soft_wrap=True, markup=False)


def _address(d: Deployment) -> str:
    """Where to call it: the gateway's stable address, and the deployment's own port."""
    if d.gateway_url:
        return f"{d.gateway_url} (its own port: {d.url})"
    return d.url


def _autoscaling(d: Deployment) -> str | None:
    a = d.autoscaling
    if a is None:
        return None
    text = (
        f"{a.min_replicas} to {a.max_replicas} replicas, {a.target_inflight:g} in flight each; "
        f"down after {a.scale_down_delay_s:g} s"
    )
    if a.min_replicas == 0:
        text += (
            f", to zero after {a.idle_timeout_s:g} s idle (requests held {a.hold_timeout_s:g} s)"
        )
    return text


def _canary(d: Deployment) -> str | None:
    c = d.canary
    if c is None:
        return None
    return (
        f"generation {c.generation} serving {c.model or c.photon} for {c.share:g}% of the "
        f"gateway's requests ({c.ready_replicas} ready); rolled back if its error rate passes "
        f"stable's by {c.error_margin:.0%} or its p99 stable's x{c.latency_margin:g} over "
        f"{c.window_s:g} s. lepton deployment promote {d.name} | rollback {d.name}"
    )


def _curl(client: Client, deployment: Deployment, token: str | None) -> str:
    path, body = "/predict", _example_body(client, deployment)
    if deployment.photon:
        handlers = client.photons.get(deployment.photon).manifest.get("handlers") or [{}]
        path, body = str(handlers[0].get("path") or "/run"), {}
    parts = ["curl", "-X", "POST", (deployment.gateway_url or deployment.url) + path]
    if token:
        parts += ["-H", f"Authorization: Bearer {token}"]
    if body is None:  # an image model: upload a picture
        parts += ["-F", "file=@image.png"]
    else:
        parts += ["-H", "Content-Type: application/json", "-d", jsonlib.dumps(body)]
    return "    " + " ".join(shlex.quote(p) for p in parts)


def _example_body(client: Client, deployment: Deployment) -> dict[str, Any] | None:
    """A request the model accepts, in the shape of a real one: a row with every input column
    (zeros for numbers), a vector of zeros, or None for an image (sent as a file)."""
    if not deployment.model:
        return {}
    inputs = client.models.get(deployment.model).signature.get("inputs")
    if isinstance(inputs, dict) and isinstance(inputs.get("shape"), list):
        shape = inputs["shape"]
        return None if len(shape) > 1 else {"inputs": [[0] * int(shape[0] if shape else 1)]}
    if not isinstance(inputs, list):
        return {}
    numeric = ("int", "float", "bool", "number")
    row = {
        str(col.get("name")): 0 if str(col.get("dtype", "")).startswith(numeric) else "text"
        for col in inputs
        if isinstance(col, dict)
    }
    return {"rows": [row]}


def _access(d: Deployment) -> str:
    return "PUBLIC" if d.public else "token"


@app.command("list")
def list_(json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Deployments of the workspace: state, what they serve, replicas, URL, access."""
    from lepton.client import Client

    deployments = Client().deployments.list()
    if json:
        print_json(deployments)
        return
    table(
        ["name", "state", "serves", "ready", "url", "access"],
        [
            (
                d.name,
                d.state.value,
                d.model or d.photon,
                f"{d.ready_replicas}/{d.replicas}",
                d.url,
                _access(d),
            )
            for d in deployments
        ],
    )


@app.command()
def show(
    name: str = typer.Argument(..., callback=nonblank, help="Deployment name."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A deployment: URL, access, what it serves, batching, the last minute's traffic, and
    each replica's state."""
    from lepton.client import Client

    client = Client()
    d = client.deployments.get(name)
    if json:
        print_json(d)
        return
    decision = d.autoscaling.last_decision if d.autoscaling else None
    if decision and d.autoscaling and d.autoscaling.decided_at:
        decision = f"{decision} ({when(d.autoscaling.decided_at)})"
    rows: list[tuple[str, object]] = [
        ("url", d.gateway_url or d.url),
        ("own port", d.url if d.gateway_url else None),
        ("access", _PUBLIC if d.public else f"token {d.token_id} (deployment:{d.id})"),
        ("state", d.state.value),
        ("serves", f"{d.model or d.photon} (asked for {d.requested})"),
        ("replicas", f"{d.ready_replicas} of {d.replicas} ready, generation {d.generation}"),
        ("autoscaling", _autoscaling(d)),
        ("last scaling", decision),
        ("canary", _canary(d)),
        ("traffic", _last_minute(client.deployments.traffic(name, minutes=1))),
        ("batching", f"up to {d.max_batch_size}, wait {d.max_wait_ms:g} ms"),
        ("timeout", f"{d.timeout_s:g} s"),
        ("row limit", f"{d.max_rows:,} per request"),
        ("resources", _resources(d)),
        ("env", ", ".join(f"{k}={v}" for k, v in d.env.items()) or None),
        ("secrets", ", ".join(d.secrets) or None),
        ("created", when(d.created_at)),
    ]
    if d.error:
        rows.append(("error", d.error))
    optional = {"own port", "last scaling", "canary"}  # shown only when there is one
    table(["", ""], [(k, v) for k, v in rows if v is not None or k not in optional])
    table(
        ["replica", "generation", "state", "pid", "restarts", "last error"],
        [
            (r.id, r.generation, r.state.value, r.pid, r.restarts, r.last_error)
            for r in d.replica_states
        ],
    )


def _last_minute(traffic: DeploymentTraffic) -> str:
    """The last minute in a few words: the rate, p95, and errors or refusals if any."""
    t = traffic.totals
    if not t.requests:
        return "no requests in the last minute"
    parts = [f"{_figure(t.requests_per_s)} requests/s"]
    if t.p95_ms is not None:
        parts.append(f"p95 {_figure(t.p95_ms)} ms")
    parts += [f"{n} {what}" for n, what in ((t.errors, "errors"), (t.rejected, "rejected")) if n]
    return ", ".join(parts) + " (last minute)"


def _figure(value: float) -> str:
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


@app.command()
def logs(
    name: str = typer.Argument(..., callback=nonblank, help="Deployment name."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing (Ctrl-C stops)."),
) -> None:
    """The replicas' output, each line tagged with its replica, and the supervisor's events."""
    from lepton.client import Client

    client = Client()
    if follow:
        for text in client.deployments.follow(name):
            sys.stdout.write(text)
            sys.stdout.flush()
        return
    offset = 0
    while True:
        chunk = client.deployments.logs(name, offset)
        sys.stdout.write(chunk.text)
        if not chunk.text:
            break
        offset = chunk.offset


@app.command()
def scale(
    name: str = typer.Argument(..., callback=nonblank, help="Deployment name."),
    replicas: int = typer.Argument(..., min=1, max=32, help="Replicas to run."),
) -> None:
    """Run N replicas; those serving keep serving."""
    from lepton.client import Client

    d = Client().deployments.scale(name, replicas)
    console.print(f"Deployment {d.name}: scaling to {d.replicas} replica(s).")


@app.command()
def update(
    name: str = typer.Argument(..., callback=nonblank, help="Deployment name."),
    model: str = typer.Option(None, help="Serve this model version: NAME@3, NAME@production."),
    photon: str = typer.Option(None, help="Serve this photon: NAME or NAME@N."),
    canary: float = typer.Option(
        None,
        min=0.01,
        max=99.99,
        help="Try the change on this percent of the gateway's requests beside what serves, "
        "instead of rolling it out (then: lepton deployment promote | rollback).",
    ),
    canary_error_margin: float = typer.Option(
        None, min=0, max=1, help="Roll the canary back past stable's error rate + this (0.05)."
    ),
    canary_latency_margin: float = typer.Option(
        None, min=1, max=100, help="... or past stable's p99 times this (2)."
    ),
    canary_window: float = typer.Option(
        None, min=5, max=3600, help="Seconds the canary is judged over (30)."
    ),
    min_replicas: int = typer.Option(None, min=0, max=32, help="Autoscale from this many."),
    max_replicas: int = typer.Option(None, min=1, max=32, help="Autoscale up to this many."),
    target_inflight: float = typer.Option(
        None, min=0.01, max=10_000, help="Requests in flight per replica aimed at."
    ),
    scale_down_delay: float = typer.Option(
        None, min=0, max=86_400, help="Seconds of lower load before a replica goes."
    ),
    idle_timeout: float = typer.Option(
        None, min=1, max=7 * 86_400, help="Seconds idle before scaling to zero."
    ),
    hold_timeout: float = typer.Option(
        None, min=0.1, max=600, help="Seconds the gateway holds a request for a replica."
    ),
    max_batch_size: int = typer.Option(None, min=1, max=4096, help="Most requests per call."),
    max_wait_ms: float = typer.Option(None, min=0, max=1000, help="Batch wait, ms."),
    timeout: float = typer.Option(None, min=0.001, max=3600, help="Request timeout, seconds."),
    max_rows: int = typer.Option(
        None, min=1, max=MAX_ROWS_CEILING, help="Most rows one request may carry."
    ),
    cpus: float = typer.Option(None, min=0, max=256, help="CPU cores each replica reserves."),
    memory: str = typer.Option(None, help="Memory each replica needs, e.g. 2G or 512M."),
    gpus: int = typer.Option(None, min=0, max=16, help="GPUs each replica gets."),
    env: list[str] = typer.Option(
        None, "--env", "-e", help=_ENV_HELP + " Replaces the current variables."
    ),
    env_file: Path = typer.Option(
        None, "--env-file", exists=True, dir_okay=False, help="A file of K=V lines."
    ),
    clear_env: bool = typer.Option(False, "--clear-env", help="Remove every variable."),
    secret: list[str] = typer.Option(
        None, "--secret", help=SECRET_HELP + " Replaces the current secrets."
    ),
    clear_secrets: bool = typer.Option(False, "--clear-secrets", help="Remove every secret."),
    detach: bool = typer.Option(False, "--detach", help="Return at once."),
) -> None:
    """Roll to a new model version, photon, batching, variables or secrets: each new replica
    is ready before an old one drains, so callers see no failed request. With --canary, try
    it on a share of the traffic first. Also changes autoscaling (no restart)."""
    from lepton.client import Client

    if (clear_env and (env or env_file)) or (clear_secrets and secret):
        raise InvalidRequest(
            "--clear-env / --clear-secrets remove what --env / --secret would set",
            fix="give either the new variables (secrets) or the --clear option, not both",
        )
    variables = parse_env(list(env or []), env_file) if env or env_file else None
    client = Client()
    d = client.deployments.update(
        name,
        model=model,
        photon=photon,
        canary=canary,
        canary_error_margin=canary_error_margin,
        canary_latency_margin=canary_latency_margin,
        canary_window_s=canary_window,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_inflight=target_inflight,
        scale_down_delay_s=scale_down_delay,
        idle_timeout_s=idle_timeout,
        hold_timeout_s=hold_timeout,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        timeout_s=timeout,
        max_rows=max_rows,
        cpus=cpus,
        memory_mb=parse_memory(memory),
        gpus=gpus,
        env={} if clear_env else variables,
        secrets=[] if clear_secrets else (list(secret) if secret else None),
    )
    if d.canary is not None and canary is not None:
        console.print(f"Deployment {d.name}: canary {_canary(d)}")
        return
    console.print(f"Deployment {d.name}: generation {d.generation} serving {d.model or d.photon}.")
    if detach:
        return
    with console.status("rolling..."):
        d = client.deployments.wait(name)
    console.print(f"Rolled: {d.ready_replicas} of {d.replicas} replica(s) ready.")


@app.command()
def history(
    name: str = typer.Argument(..., callback=nonblank, help="Deployment name."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """What each generation served and why it began, newest first (* marks the current one)."""
    from lepton.client import Client

    revisions = Client().deployments.revisions(name)
    if json:
        print_json(revisions)
        return
    table(
        ["gen", "serves", "reason", "batching", "env", "created"],
        [
            (
                f"{r.generation} *" if r.current else r.generation,
                (r.model or r.photon or r.requested) + ("" if r.available else " (deleted)"),
                r.reason,
                f"{r.max_batch_size}, {r.max_wait_ms:g} ms, {r.timeout_s:g} s",
                _variables(r),
                when(r.created_at),
            )
            for r in revisions
        ],
    )
    if len(revisions) > 1:
        console.print(f"Roll back: lepton deployment rollback {name} [--to GEN]")


def _variables(r: DeploymentRevision) -> str | None:
    """Variables with their values, secrets by name only."""
    shown = [f"{k}={v}" for k, v in r.env.items()] + [f"{s} (secret)" for s in r.secrets]
    return ", ".join(shown) or None


@app.command()
def rollback(
    name: str = typer.Argument(..., callback=nonblank, help="Deployment name."),
    to: int = typer.Option(
        None, "--to", min=1, help="Generation to roll back to.", show_default="the one before"
    ),
    detach: bool = typer.Option(False, "--detach", help="Return at once."),
) -> None:
    """Serve what an earlier generation served again, as a new generation rolled out like an
    update (the replica count stays). With a canary on trial, drop the canary instead."""
    from lepton.client import Client

    client = Client()
    trial = client.deployments.get(name).canary
    d = client.deployments.rollback(name, to)
    if trial is not None and to is None:
        console.print(
            f"Deployment {d.name}: canary generation {trial.generation} dropped; generation "
            f"{d.generation} serves {d.model or d.photon}."
        )
        return
    [latest] = client.deployments.revisions(name, limit=1)  # says which generation it took
    console.print(
        f"Deployment {d.name}: {latest.reason}; generation {d.generation} serving "
        f"{d.model or d.photon}."
    )
    if detach:
        console.print(f"Not waiting. Follow it: lepton deployment show {name}")
        return
    with console.status("rolling back..."):
        d = client.deployments.wait(name)
    console.print(f"Rolled back: {d.ready_replicas} of {d.replicas} replica(s) ready.")
    console.print(f"History: lepton deployment history {name}")


@app.command()
def promote(
    name: str = typer.Argument(..., callback=nonblank, help="Deployment name."),
    detach: bool = typer.Option(False, "--detach", help="Return at once."),
) -> None:
    """Make the canary the serving version: its replica stays, the old ones are replaced one
    by one."""
    from lepton.client import Client

    client = Client()
    d = client.deployments.promote(name)
    console.print(f"Deployment {d.name}: generation {d.generation} serving {d.model or d.photon}.")
    if detach:
        return
    with console.status("rolling..."):
        d = client.deployments.wait(name)
    console.print(f"Promoted: {d.ready_replicas} of {d.replicas} replica(s) ready.")


@app.command("rm")
def remove(name: str = typer.Argument(..., callback=nonblank, help="Deployment name.")) -> None:
    """Revoke the token, drain the replicas and remove the deployment."""
    from lepton.client import Client

    with console.status(f"draining {name}..."):
        Client().deployments.delete(name)
    console.print(f"Deployment {name} removed; its token is revoked.")


# --- photon push|list|rm (``lepton photon run`` lives in cli/photon.py) -----------------------


def photon_push(
    path: str = typer.Argument(..., help="The photon's folder, or FILE.py:Class."),
    model: str = typer.Option(None, "-m", "--model", help="FILE.py:Class in the folder."),
    name: str = typer.Option(None, help="Photon name.", show_default="the class name, lower-case"),
) -> None:
    """Package a photon (source and manifest, never a pickle) and push it."""
    from lepton.client import Client

    p = Client().photons.push(path, entry=model, name=name)
    console.print(f"Pushed photon [bold]{p.ref}[/] ({p.size} bytes, sha256 {p.digest[:12]}).")
    console.print(f"Deploy it: lepton deploy --photon {p.ref}")


def photon_list(json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Pushed photons, every version."""
    from lepton.client import Client

    photons = Client().photons.list()
    if json:
        print_json(photons)
        return
    table(
        ["name", "version", "entry", "size", "digest", "pushed"],
        [(p.name, p.version, p.entry, p.size, p.digest[:12], when(p.created_at)) for p in photons],
    )


def photon_rm(
    name: str = typer.Argument(..., callback=nonblank, help="Photon name."),
    version: str = typer.Option(None, help="Only this version.", show_default="all"),
) -> None:
    """Delete a photon (refused while a deployment serves it)."""
    from lepton.client import Client

    gone = Client().photons.delete(name, version=version)
    console.print("Deleted " + ", ".join(p.ref for p in gone) + ".")


def add_photon_commands(group: typer.Typer) -> None:
    """Register push, list and rm on the ``lepton photon`` group."""
    group.command("push")(photon_push)
    group.command("list")(photon_list)
    group.command("rm")(photon_rm)


def _resources(d: Deployment) -> str:
    """What each replica reserves, as ``deployment show`` prints it."""
    parts = [f"{d.cpus:g} CPUs" if d.cpus else "no CPU reservation"]
    if d.memory_mb:
        parts.append(f"{d.memory_mb:,} MiB")
    if d.gpus:
        parts.append(f"{d.gpus} GPUs")
    return ", ".join(parts) + " per replica"
