"""What the cluster needs of etcd v3: keys, leases, a guarded write, a watch.

The node agent and the leader see only :class:`Store`; :class:`EtcdStore`
is the one implementation, on the asyncio client ``aetcd`` (an install
extra: ``bigtop[cluster]``). Another client could replace it behind the
same methods. Every failure of the store (unreachable, no leader, timed
out, refused) is a :class:`StoreError`: the agent's answer to all of them
is the same, to keep what runs and try again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

CALL_TIMEOUT_S = 2.0  # one request; a member without quorum fails at once
MAX_TXN_OPS = 100  # etcd refuses more than 128 operations in one transaction
# gRPC pings an idle connection this often, so that a dead member is
# noticed (etcd refuses pings more often than every 5 s).
KEEPALIVE_MS = 10_000


class StoreError(Exception):
    """The store could not be reached or refused the request."""


@dataclass(frozen=True)
class Entry:
    key: str
    value: bytes
    revision: int  # the key's last change
    lease: int = 0


@dataclass(frozen=True)
class Change:
    key: str
    value: bytes | None  # None: the key was deleted (or its lease ended)
    revision: int


class Store(Protocol):
    async def get(self, key: str) -> Entry | None: ...

    async def range(self, prefix: str) -> tuple[list[Entry], int]:
        """The keys under ``prefix`` and the store's revision they were read at."""

    async def put(self, key: str, value: bytes, lease: int = 0) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def create(self, key: str, value: bytes, lease: int = 0) -> bool:
        """Put the key unless it exists; whether it was put."""

    async def commit(self, guard: tuple[str, bytes] | None, puts: Mapping[str, bytes],
                     deletes: Sequence[str]) -> bool:
        """Apply the puts and deletes, MAX_TXN_OPS at once (up to that many
        land whole or not at all), each batch only while ``guard``'s key
        holds its value (the leader's writes, while it still leads); False
        as soon as a batch is not applied."""

    async def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; its id."""

    async def keepalive(self, lease: int) -> int:
        """Renew the lease; the seconds it has left, 0 if it has ended."""

    async def revoke(self, lease: int) -> None: ...

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[Change]:
        """Every change under ``prefix`` from ``start_revision`` on; ends
        with a StoreError when the stream breaks."""

    async def close(self) -> None: ...


async def grpc_target(endpoints: Sequence[str]) -> str:
    """A gRPC target naming every member's address, so that the channel
    goes to another member when one dies. Host names are resolved here, in
    a thread, as gRPC's ``ipv4:`` form takes addresses only."""
    loop = asyncio.get_running_loop()
    v4: list[str] = []
    v6: list[str] = []
    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
            found = [host]
        except ValueError:
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as err:
                raise StoreError(f"etcd endpoint {endpoint}: {err}") from None
            found = [str(info[4][0]) for info in infos]
        for address in found:
            if ":" in address:
                v6.append(f"[{address}]:{port}")
            else:
                v4.append(f"{address}:{port}")
    if v4:  # one target holds one family; IPv4 when there is any
        return "ipv4:" + ",".join(dict.fromkeys(v4))
    return "ipv6:" + ",".join(dict.fromkeys(v6))


@dataclass(frozen=True)
class Credentials:
    """How to reach etcd: TLS files and a user, all optional."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    user: str | None = None
    password: str | None = None


def _errors(err: BaseException) -> StoreError:
    text = str(err).strip() or type(err).__name__
    details = getattr(err, "details", None)
    if callable(details):
        text = details() or text
    return StoreError(text)


class EtcdStore:
    """:class:`Store` on etcd v3 through ``aetcd``."""

    def __init__(self, endpoints: Sequence[str], credentials: Credentials | None = None,
                 timeout: float = CALL_TIMEOUT_S):
        self.endpoints = tuple(endpoints)
        self.credentials = credentials or Credentials()
        self.timeout = timeout
        self._client: Any = None

    async def _connected(self) -> Any:
        if self._client is None:
            self._client = await self._connect()
        return self._client

    async def _connect(self) -> Any:
        import aetcd
        import aetcd.watcher
        import grpc
        from aetcd import rpc

        target = await grpc_target(self.endpoints)
        creds = self.credentials
        options = [("grpc.keepalive_time_ms", KEEPALIVE_MS),
                   ("grpc.keepalive_timeout_ms", KEEPALIVE_MS // 2),
                   ("grpc.lb_policy_name", "pick_first")]
        if creds.ca or creds.cert:
            files = []
            for path in (creds.ca, creds.key, creds.cert):
                files.append(await asyncio.to_thread(_read, path) if path else None)
            tls = grpc.ssl_channel_credentials(*files)
            channel = grpc.aio.secure_channel(target, tls, options=options)
        else:
            channel = grpc.aio.insecure_channel(target, options=options)
        client = aetcd.Client(timeout=self.timeout)  # its stubs on our channel
        # A member cut off from the others fails a request at once instead
        # of answering from stale data or holding a watch open forever.
        metadata: tuple[tuple[str, str], ...] = (("hasleader", "true"),)
        try:
            if creds.user:
                stub = rpc.AuthStub(channel)
                reply = await stub.Authenticate(
                    rpc.AuthenticateRequest(name=creds.user, password=creds.password or ""),
                    timeout=self.timeout)
                metadata += (("token", reply.token),)
        except grpc.aio.AioRpcError as err:
            await channel.close()
            raise _errors(err) from None
        client.channel = channel
        client.metadata = metadata
        client.kvstub = rpc.KVStub(channel)
        client.clusterstub = rpc.ClusterStub(channel)
        client.leasestub = rpc.LeaseStub(channel)
        client.maintenancestub = rpc.MaintenanceStub(channel)
        client._watcher = aetcd.watcher.Watcher(rpc.WatchStub(channel), timeout=self.timeout,
                                                metadata=metadata)
        client._connected.set()
        return client

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import aetcd
        import grpc

        client = await self._connected()
        try:
            return await getattr(client, method)(*args, **kwargs)
        except (TimeoutError, aetcd.ClientError, grpc.aio.AioRpcError) as err:
            raise _errors(err) from None

    async def get(self, key: str) -> Entry | None:
        found = await self._call("get", key.encode())
        if found is None:
            return None
        return Entry(key, found.value, found.mod_revision, found.lease)

    async def range(self, prefix: str) -> tuple[list[Entry], int]:
        found = await self._call("get_prefix", prefix.encode())
        entries = [Entry(kv.key.decode(errors="replace"), kv.value, kv.mod_revision, kv.lease)
                   for kv in found]
        return entries, found.header.revision

    async def put(self, key: str, value: bytes, lease: int = 0) -> None:
        await self._call("put", key.encode(), value, lease=lease or None)

    async def delete(self, key: str) -> None:
        await self._call("delete", key.encode())

    async def create(self, key: str, value: bytes, lease: int = 0) -> bool:
        client = await self._connected()
        t = client.transactions
        done, _ = await self._call("transaction", compare=[t.create(key.encode()) == 0],
                                   success=[t.put(key.encode(), value, lease=lease or None)],
                                   failure=[])
        return bool(done)

    async def commit(self, guard: tuple[str, bytes] | None, puts: Mapping[str, bytes],
                     deletes: Sequence[str]) -> bool:
        client = await self._connected()
        t = client.transactions
        ops = [t.put(k.encode(), v) for k, v in puts.items()]
        ops += [t.delete(k.encode()) for k in deletes]
        compare = [t.value(guard[0].encode()) == guard[1]] if guard else []
        for start in range(0, len(ops), MAX_TXN_OPS):
            done, _ = await self._call("transaction", compare=compare,
                                       success=ops[start:start + MAX_TXN_OPS], failure=[])
            if not done:
                return False
        return True

    async def grant(self, ttl: int) -> int:
        lease = await self._call("lease", ttl)
        return int(lease.id)

    async def keepalive(self, lease: int) -> int:
        # One request on a stream of its own, read to its end: aetcd's
        # refresh_lease returns at the first reply and leaves the stream
        # (and gRPC's task for it) open until the server ends it.
        import grpc
        from aetcd import rpc

        client = await self._connected()
        replies = []
        try:
            call = client.leasestub.LeaseKeepAlive(
                iter([rpc.LeaseKeepAliveRequest(ID=lease)]), timeout=self.timeout,
                metadata=client.metadata)
            async for reply in call:
                replies.append(reply)
        except grpc.aio.AioRpcError as err:
            raise _errors(err) from None
        return int(replies[0].TTL) if replies else 0

    async def revoke(self, lease: int) -> None:
        await self._call("revoke_lease", lease)

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[Change]:
        import aetcd
        import grpc

        watch = await self._call("watch_prefix", prefix.encode(),
                                 start_revision=start_revision)
        try:
            async for event in watch:
                gone = event.kind == aetcd.EventKind.DELETE
                yield Change(event.kv.key.decode(errors="replace"),
                             None if gone else event.kv.value, event.kv.mod_revision)
        except (aetcd.ClientError, grpc.aio.AioRpcError) as err:
            raise _errors(err) from None
        finally:
            try:
                async with asyncio.timeout(self.timeout):
                    await watch.cancel()
            except Exception:  # the stream is gone already
                pass
        raise StoreError("the watch stream ended")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.close()
        except Exception:  # closing a broken channel
            pass
        # Closing cancels the channel's calls; gRPC then ends a task of its
        # own per call as the cancellation comes back from its core. Wait
        # for those, so that no task outlives the store.
        mine = [t for t in asyncio.all_tasks() if _grpc_task(t)]
        if mine:
            await asyncio.wait(mine, timeout=self.timeout)


def _grpc_task(task: asyncio.Task[Any]) -> bool:
    frames = task.get_stack(limit=1)
    return bool(frames) and "grpc" in frames[0].f_code.co_filename


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
