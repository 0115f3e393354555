"""A local Ray cluster in its own process, driven over stdin, for tests/integration/test_ray.py.

``python ray_cluster.py WORKERS`` starts ``ray.cluster_utils.Cluster``: a head with no CPUs and
WORKERS worker nodes of one CPU each, all on 127.0.0.1, with the token authentication of its
environment (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN``). It prints one JSON line, the address
and the worker nodes' ids, then answers one JSON line per command read:

- ``remove PREFIX``: kill the worker node whose id starts with PREFIX (no graceful exit);
- ``add``: start another worker node;
- ``nodes``: the worker nodes' ids;
- ``actors``: the names of the live named actors in Lepton's namespace (``lepton``);
- ``free``: the cluster's available resources (CPU, memory in bytes).

End of input shuts the cluster down. A process of its own because Ray reads its settings
(authentication among them) once, when first imported, and must not be imported by the tests.
"""

from __future__ import annotations

import json
import os
import sys

from ray.cluster_utils import Cluster


def main() -> None:
    # The answers get stdout to themselves: whatever else writes to it (Ray's driver prints
    # its raylets' last words when a node is removed) goes to stderr instead.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def say(answer: dict[str, object]) -> None:
        answers.write(json.dumps(answer) + "\n")

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    try:
        for _ in range(int(sys.argv[1])):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()

        def nodes() -> list[str]:
            return [node.node_id for node in cluster.worker_nodes]

        say({"address": cluster.address, "nodes": nodes()})
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "remove":
                found = [n for n in cluster.worker_nodes if n.node_id.startswith(argument)]
                for node in found:
                    cluster.remove_node(node, allow_graceful=False)
                say({"removed": len(found), "nodes": nodes()})
            elif command == "add":
                cluster.add_node(num_cpus=1)
                cluster.wait_for_nodes()
                say({"nodes": nodes()})
            elif command in ("actors", "free"):
                import ray

                if not ray.is_initialized():
                    ray.init(address=cluster.address, namespace="lepton", log_to_driver=False)
                answer = {"nodes": nodes()}
                if command == "actors":
                    answer["actors"] = sorted(str(n) for n in ray.util.list_named_actors())
                else:
                    answer["free"] = ray.available_resources()
                say(answer)
            else:
                say({"nodes": nodes()})
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
