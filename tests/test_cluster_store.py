"""The store the cluster runs on: bigtop's small interface over etcd v3,
against a real 3-member etcd cluster (Debian's etcd-server)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bigtop.cluster.store import Change, Credentials, EtcdStore, StoreError, grpc_target

from .conftest import free_port
from .etcd import ETCD, EtcdCluster


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _next(changes: AsyncIterator[Change]) -> Change:
    return await asyncio.wait_for(anext(changes), 10)


def test_keys_leases_and_guarded_writes(etcd: EtcdCluster) -> None:
    async def main() -> None:
        store = EtcdStore(etcd.endpoints.split())
        try:
            await store.put("/t/a", b"1")
            assert (await store.get("/t/a")).value == b"1"  # type: ignore[union-attr]
            assert await store.get("/t/none") is None
            assert await store.create("/t/b", b"first")
            assert not await store.create("/t/b", b"second")
            entries, revision = await store.range("/t/")
            assert [(e.key, e.value) for e in entries] == [("/t/a", b"1"), ("/t/b", b"first")]
            assert revision >= entries[-1].revision
            # A guarded write lands only while the guard holds.
            assert await store.commit(("/t/b", b"first"), {"/t/c": b"3"}, ["/t/a"])
            assert not await store.commit(("/t/b", b"other"), {"/t/d": b"4"}, [])
            keys = [e.key for e in (await store.range("/t/"))[0]]
            assert keys == ["/t/b", "/t/c"]
            lease = await store.grant(2)
            assert await store.keepalive(lease) == 2
            await store.put("/t/leased", b"x", lease)
            await store.revoke(lease)
            assert await store.get("/t/leased") is None
            assert await store.keepalive(lease) == 0
        finally:
            await store.close()

    run(main())


def test_a_watch_sees_changes_from_a_revision_and_survives_the_leader(
        etcd: EtcdCluster) -> None:
    async def main() -> None:
        store = EtcdStore(etcd.endpoints.split())
        try:
            await store.put("/w/x", b"before")
            _, revision = await store.range("/w/")
            changes = store.watch("/w/", revision + 1)
            await store.put("/w/y", b"1")
            first = await _next(changes)
            assert (first.key, first.value) == ("/w/y", b"1")
            lease = await store.grant(5)
            etcd.kill(etcd.leader())
            # The channel moves to another member; a request may fail while
            # the others elect a leader, never for longer.
            for _ in range(50):
                try:
                    await store.put("/w/z", b"2")
                    break
                except StoreError:
                    await asyncio.sleep(0.1)
            assert await store.keepalive(lease) == 5
            try:
                change = await _next(changes)
                assert (change.key, change.value) == ("/w/z", b"2")
            except StoreError:  # the stream was on the dead member: read again
                pass
            await store.delete("/w/y")
            entries, _ = await store.range("/w/")
            assert sorted(e.key for e in entries) == ["/w/x", "/w/z"]
        finally:
            await store.close()

    run(main())


def test_an_unreachable_store_is_a_store_error() -> None:
    async def main() -> None:
        store = EtcdStore(["127.0.0.1:1"], timeout=0.5)
        try:
            with pytest.raises(StoreError):
                await store.put("/x", b"1")
        finally:
            await store.close()
        with pytest.raises(StoreError, match="no-such-host.invalid"):
            await grpc_target(["no-such-host.invalid:2379"])
        assert await grpc_target(["127.0.0.1:1", "::1:2", "127.0.0.1:1"]) == "ipv4:127.0.0.1:1"

    run(main())


def _single_member(tmp_path: Path, *flags: str, scheme: str = "http") -> tuple[
        subprocess.Popen[bytes], int]:
    port, peer = free_port(), free_port()
    member = subprocess.Popen(
        [str(ETCD), "--name", "one", "--data-dir", str(tmp_path / "data"),
         "--listen-client-urls", f"{scheme}://127.0.0.1:{port}",
         "--advertise-client-urls", f"{scheme}://127.0.0.1:{port}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"one=http://127.0.0.1:{peer}", *flags,
         "--log-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return member, port


def _certificates(where: Path) -> None:
    """A CA, and a server and a client certificate it signed, for 127.0.0.1."""
    (where / "san.cnf").write_text(
        "[req]\ndistinguished_name = dn\n[dn]\n[ext]\n"
        "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth,clientAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=where, check=True, capture_output=True)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=test-ca")
    for name in ("server", "client"):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                "-extfile", "san.cnf", "-extensions", "ext")


@pytest.mark.skipif(shutil.which("openssl") is None or ETCD is None,
                    reason="needs openssl and etcd")
def test_tls_with_a_client_certificate(tmp_path: Path) -> None:
    _certificates(tmp_path)
    etcd, port = _single_member(
        tmp_path, "--cert-file", str(tmp_path / "server.pem"),
        "--key-file", str(tmp_path / "server.key"), "--trusted-ca-file",
        str(tmp_path / "ca.pem"), "--client-cert-auth", scheme="https")

    async def main() -> None:
        good = Credentials(ca=str(tmp_path / "ca.pem"), cert=str(tmp_path / "client.pem"),
                           key=str(tmp_path / "client.key"))
        store = EtcdStore([f"127.0.0.1:{port}"], good)
        try:
            for _ in range(100):  # until etcd listens
                try:
                    await store.put("/tls", b"yes")
                    break
                except StoreError:
                    await asyncio.sleep(0.1)
            assert (await store.get("/tls")).value == b"yes"  # type: ignore[union-attr]
        finally:
            await store.close()
        for credentials in (None, Credentials(ca=str(tmp_path / "ca.pem"))):
            refused = EtcdStore([f"127.0.0.1:{port}"], credentials, timeout=1)
            try:
                with pytest.raises(StoreError):
                    await refused.get("/tls")
            finally:
                await refused.close()

    try:
        run(main())
    finally:
        etcd.kill()
        etcd.wait(10)


@pytest.mark.skipif(ETCD is None, reason="needs etcd")
def test_a_user_and_password(tmp_path: Path) -> None:
    member, port = _single_member(tmp_path)

    async def main() -> None:
        import grpc
        from aetcd import rpc

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            auth = rpc.AuthStub(channel)
            for _ in range(100):  # until etcd listens
                try:
                    await auth.RoleAdd(rpc.AuthRoleAddRequest(name="root"), timeout=1)
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.1)
            await auth.UserAdd(rpc.AuthUserAddRequest(name="root", password="secret"))
            await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"))
            await auth.AuthEnable(rpc.AuthEnableRequest())
        store = EtcdStore([f"127.0.0.1:{port}"], Credentials(user="root", password="secret"))
        try:
            await store.put("/auth", b"yes")
            assert (await store.get("/auth")).value == b"yes"  # type: ignore[union-attr]
        finally:
            await store.close()
        for credentials in (None, Credentials(user="root", password="wrong")):
            refused = EtcdStore([f"127.0.0.1:{port}"], credentials, timeout=1)
            try:
                with pytest.raises(StoreError):
                    await refused.get("/auth")
            finally:
                await refused.close()

    try:
        run(main())
    finally:
        member.kill()
        member.wait(10)
