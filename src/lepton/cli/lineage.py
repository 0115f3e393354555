"""``lepton lineage REF``: where a model or dataset version came from and what came of it."""

from __future__ import annotations

import typer

from lepton.cli.output import console, nonblank, print_json


def lineage(
    ref: str = typer.Argument(
        ..., callback=nonblank, help="A model version (heart@3) or, with --dataset, heart@v1."
    ),
    dataset: bool = typer.Option(False, "--dataset", help="REF names a dataset version."),
    json: bool = typer.Option(False, "--json", help="Print nodes and edges as JSON."),
) -> None:
    """The lineage graph as two trees: upstream (what it was made from) and downstream."""
    from rich.tree import Tree

    from lepton.client import Client

    graph = Client().models.lineage(ref, kind="dataset" if dataset else "model")
    if json:
        print_json(graph)
        return
    nodes = {n.id: n for n in graph.nodes}
    parents: dict[str, list[tuple[str, str]]] = {}
    children: dict[str, list[tuple[str, str]]] = {}
    for edge in graph.edges:
        parents.setdefault(edge.target, []).append((edge.source, edge.relation))
        children.setdefault(edge.source, []).append((edge.target, edge.relation))

    def label(node_id: str, relation: str = "") -> str:
        node = nodes[node_id]
        extra = ", ".join(
            f"{k} {v}" for k, v in sorted(node.attributes.items()) if k != "deleted_at"
        )
        deleted = " [red](deleted)[/]" if "deleted_at" in node.attributes else ""
        rel = f"[dim]{relation}[/] " if relation else ""
        return f"{rel}{node.kind.replace('_', ' ')} [bold]{node.ref}[/]{deleted}" + (
            f" [dim]({extra})[/]" if extra else ""
        )

    def grow(
        tree: Tree, node_id: str, links: dict[str, list[tuple[str, str]]], seen: set[str]
    ) -> None:
        for other, relation in sorted(links.get(node_id, [])):
            if other in seen:
                continue
            grow(tree.add(label(other, relation)), other, links, seen | {other})

    root = Tree(label(graph.root))
    up = root.add("[cyan]made from[/]")
    grow(up, graph.root, parents, {graph.root})
    down = root.add("[cyan]used by[/]")
    grow(down, graph.root, children, {graph.root})
    console.print(root)
