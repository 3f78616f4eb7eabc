"""Where each cluster watcher runs: a pure function of the desired state,
the nodes and where the watchers run now, so that it is tested alone and
every leader computes the same answer.

Stability first: a watcher stays on a node that is still eligible (moving
a healthy process is never free). Nodes that are down but within their
grace period keep what they had, so a node that comes back in time finds
its work where it left it. New places go, in order, to the node whose
``spread`` label value is least used by the watcher, then to the least
loaded node, then by name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Set

from ..config.model import Placement

Labels = Mapping[str, str]


def matches(labels: Labels, placement: Placement) -> bool:
    """Whether a node with these labels may run a watcher placed so."""
    for name, op, value in placement.constraints:
        has = labels.get(name) == value
        if has != (op == "="):
            return False
    return True


def conflict_graph(desired: Mapping[str, Placement]) -> dict[str, set[str]]:
    """``conflicts`` both ways: if A avoids B, B avoids A."""
    graph: dict[str, set[str]] = {name: set() for name in desired}
    for name, placement in desired.items():
        for other in placement.conflicts:
            if other != name:
                graph[name].add(other)
                graph.setdefault(other, set()).add(name)
    return graph


def place(desired: Mapping[str, Placement], nodes: Mapping[str, Labels],
          current: Mapping[str, Set[str]], held: Set[str] = frozenset()) -> dict[str, set[str]]:
    """The nodes each desired watcher runs on.

    ``nodes``: the nodes that are up, with their labels; ``current``: the
    nodes each watcher is assigned to now; ``held``: nodes that are down
    but within their grace period (their assignments are kept, and count).
    """
    conflicts = conflict_graph(desired)
    result: dict[str, set[str]] = {}
    load: Counter[str] = Counter()

    def placed(watcher: str) -> Set[str]:
        return result.get(watcher, current.get(watcher, set()) if watcher in desired else set())

    for name in sorted(desired):
        placement = desired[name]

        def eligible(node: str, name: str = name, placement: Placement = placement) -> bool:
            return (node in nodes and matches(nodes[node], placement)
                    and not any(node in placed(other) for other in conflicts.get(name, ())))

        keep = {n for n in current.get(name, ()) if n in held or eligible(n)}
        candidates = sorted(n for n in nodes if n not in keep and eligible(n))
        if placement.nodes == 0:  # every eligible node
            chosen = keep | set(candidates)
        else:
            chosen = set(keep)
            # Fewer wanted than placed: leave the held (down) nodes first,
            # then the most loaded.
            while len(chosen) > placement.nodes:
                chosen.remove(max(chosen, key=lambda n: (n in held, load[n], n)))
            while len(chosen) < placement.nodes and candidates:
                best = min(candidates, key=lambda n: _rank(n, chosen, nodes, placement, load))
                candidates.remove(best)
                chosen.add(best)
        result[name] = chosen
        load.update(chosen)
    return result


def _rank(node: str, chosen: Set[str], nodes: Mapping[str, Labels], placement: Placement,
          load: Counter[str]) -> tuple[int, int, str]:
    """Lower is better: fewest of the watcher's nodes sharing this node's
    ``spread`` value, then least loaded, then by name."""
    spread = placement.spread
    used = sum(1 for n in chosen if nodes.get(n, {}).get(spread) == nodes[node].get(spread)) \
        if spread else 0
    return (used, load[node], node)
