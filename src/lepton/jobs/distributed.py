"""How the workers of one data-parallel job find each other: a rendezvous through the control
plane's API, then one ``torch.distributed`` process group.

The executor starts ``workers`` copies of the runner and tells each its place: ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` (torch's names, as ``torchrun`` and Ray Train set them) and
``LEPTON_NODE_IP``, the address of the machine it runs on. Rank 0 opens a ``TCPStore`` on a free
port of that address and records ``host:port`` for its attempt
(``PUT /jobs/{id}/rendezvous``); the others read it (``GET``) and connect. The store then
brings the group together (gloo on CPUs, NCCL when every worker has a GPU), and
:mod:`lepton.algorithms.parallel` keeps the training loop in step.

Why not Ray Train's ``TorchTrainer``: it runs the training function inside Ray worker
processes, which hold the cluster's API (anything they run can start code on every node) and
none of the containment a job gets. Here every worker is an ordinary contained runner, on the
local executor and on Ray alike, and the only thing shared is the rendezvous address, through
the API the runner already talks to with its job-scoped token. The process group is set up the
way Ray Train sets it up (a TCPStore at rank 0, env-style ranks), so a user's script sees the
same ``torch.distributed`` world it would see there.

A user's script in a job with ``workers`` > 1 finds the group ready when it starts:
``torch.distributed.get_rank()``, ``DistributedDataParallel(model)``; ``lepton.log`` and
``lepton.save_model`` act on rank 0 only.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

from lepton.client import Client
from lepton.errors import LeptonError, NotFound

__all__ = ["RENDEZVOUS_TIMEOUT_S", "Place", "join", "place"]

# How long a worker waits for rank 0 to open its store (rank 0 may still be placed on a node or
# installing nothing: it only has to start Python), and for every worker to connect to it.
RENDEZVOUS_TIMEOUT_S = 300.0
_POLL_S = 0.25
_SIOCGIFADDR = 0x8915


@dataclass(frozen=True)
class Place:
    """This worker's place in its job, from the executor's variables."""

    rank: int
    size: int
    local_rank: int
    node_ip: str

    @property
    def leader(self) -> bool:
        return self.rank == 0


def place() -> Place | None:
    """This process's place among its job's workers; None for a job of one worker."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return None
    if size <= 1 or not 0 <= rank < size:
        return None
    return Place(rank, size, local, os.environ.get("LEPTON_NODE_IP") or "127.0.0.1")


def join(client: Client, job_id: str, attempt: int, where: Place) -> None:
    """Meet the job's other workers and join their process group (see the module text)."""
    import torch
    from torch.distributed import TCPStore  # type: ignore[attr-defined]

    from lepton.algorithms import parallel

    interface = _interface_of(where.node_ip)
    if interface is not None:  # gloo listens on this address only, not on every interface
        os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)
    timeout = timedelta(seconds=RENDEZVOUS_TIMEOUT_S)
    if where.leader:
        listener = socket.socket(_family(where.node_ip))
        listener.bind((where.node_ip, 0))
        listener.listen(128)
        port = listener.getsockname()[1]
        store = TCPStore(
            where.node_ip,
            port,
            where.size,
            True,
            timeout=timeout,
            wait_for_workers=False,
            master_listen_fd=listener.detach(),
        )
        leader_at = _address(where.node_ip, port)
        client.request(
            "PUT",
            f"/api/v1/jobs/{job_id}/rendezvous",
            json={"attempt": attempt, "address": leader_at},
        )
    else:
        host, port = _wait_for_leader(client, job_id, attempt)
        leader_at = _address(host, port)
        store = TCPStore(host, port, where.size, False, timeout=timeout)
    gpu = torch.cuda.is_available() and bool(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if gpu:
        torch.cuda.set_device(0)  # each worker sees its own GPUs only
    parallel.join(store, where.rank, where.size, backend="nccl" if gpu else "gloo")
    print(
        f"worker {where.rank} of {where.size} joined ({'nccl' if gpu else 'gloo'}, "
        f"rank 0 at {leader_at})",
        flush=True,
    )


def _wait_for_leader(client: Client, job_id: str, attempt: int) -> tuple[str, int]:
    deadline = time.monotonic() + RENDEZVOUS_TIMEOUT_S
    while True:
        try:
            found = client.request("GET", f"/api/v1/jobs/{job_id}/rendezvous").json()
            if found.get("attempt") == attempt:
                host, _, port = str(found["address"]).rpartition(":")
                return host.strip("[]"), int(port)
        except NotFound:
            pass
        if time.monotonic() > deadline:
            raise LeptonError(
                f"worker 0 of this job did not open its rendezvous within "
                f"{RENDEZVOUS_TIMEOUT_S:g} s",
                fix=f"see lepton job logs {job_id}: worker 0's lines say why it did not start",
            )
        time.sleep(_POLL_S)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _interface_of(ip: str) -> str | None:
    """The network interface holding IPv4 address ``ip`` (Linux), so gloo binds to it alone."""
    if not sys.platform.startswith("linux") or ":" in ip:
        return None
    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                packed = fcntl.ioctl(
                    probe.fileno(), _SIOCGIFADDR, struct.pack("256s", name[:15].encode())
                )
            except OSError:  # an interface without an IPv4 address
                continue
        if socket.inet_ntoa(packed[20:24]) == ip:
            return name
    return None
