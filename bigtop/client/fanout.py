"""One command on many cluster nodes at once.

The node list comes from any node (``cluster_nodes``: the records in etcd,
and the nodes that have work assigned but no record, which are down). The
command then goes to each chosen node's own endpoint, all at once, each
with its own timeout: a dead node is a row with its error, and never makes
the answer wait longer than that timeout. On ``tcp://`` endpoints the
client's key is used with each node's public key from its record.
"""

from __future__ import annotations

import asyncio
from fnmatch import fnmatchcase
from typing import Any

from .calls import AsyncClient
from .errors import CallError

NODE_TIMEOUT = 0.5  # seconds one node may take to answer (a LAN round trip is ~1 ms)


def select(nodes: list[dict[str, Any]], selector: str,
           placement: dict[str, list[str]] | None = None
           ) -> tuple[list[dict[str, Any]], list[str]]:
    """The nodes a selector names (``all``; names or globs; ``LABEL=VALUE``;
    ``@WATCHER``, the nodes a cluster watcher is assigned to, from
    ``placement``; several by commas), and the parts that named no node."""
    chosen: dict[str, dict[str, Any]] = {}
    unmatched = []
    for part in (p.strip() for p in selector.split(",")):
        if not part:
            continue
        if part in ("all", "*"):
            found = nodes
        elif part.startswith("@"):
            assigned = set((placement or {}).get(part[1:], ()))
            found = [n for n in nodes if n.get("name") in assigned]
        elif "=" in part:
            label, _, value = part.partition("=")
            found = [n for n in nodes if (n.get("labels") or {}).get(label) == value]
        else:
            found = [n for n in nodes if fnmatchcase(str(n.get("name")), part)]
        if not found:
            unmatched.append(part)
        for node in found:
            chosen[str(node.get("name"))] = node
    return sorted(chosen.values(), key=lambda n: str(n.get("name"))), unmatched


async def _one(node: dict[str, Any], command: str, props: dict[str, Any], timeout: float,
               key: str | None) -> dict[str, Any]:
    name = str(node.get("name"))
    row: dict[str, Any] = {"node": name, "endpoint": node.get("endpoint")}
    if node.get("up") is False:
        return {**row, "error": "down: its lease ended"}
    endpoint = node.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        return {**row, "error": "it published no endpoint"}
    server_key = node.get("server_key")
    try:
        client = AsyncClient(endpoint, timeout=timeout, key=key,
                             server_key=server_key.encode() if server_key else None)
    except (CallError, OSError, ValueError) as err:
        return {**row, "error": str(err)}
    try:
        async with client:
            return {**row, "reply": await client.call(command, raise_on_error=False, **props)}
    except CallError as err:
        return {**row, "error": f"no reply within {timeout:g}s" if "timed out" in str(err)
                else str(err)}
    except Exception as err:  # a socket error: this node's row, not the whole answer
        return {**row, "error": str(err) or type(err).__name__}


async def fan_out(nodes: list[dict[str, Any]], command: str, props: dict[str, Any],
                  timeout: float = NODE_TIMEOUT, key: str | None = None) -> list[dict[str, Any]]:
    """Each node's row: ``node``, ``endpoint``, and ``reply`` or ``error``."""
    return list(await asyncio.gather(*(_one(n, command, props, timeout, key) for n in nodes)))
