"""Daemon-owned sockets as children see them: systemd socket activation
(fds from 3, LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES), only the sockets a
watcher uses, one socket per process with so_reuseport, accept queues."""

from __future__ import annotations

import json
import os
import socket
import sys

from .conftest import free_port, wait_for

# The child records what it got: its pid, LISTEN_* and its open fds.
REPORT = """\
import json, os, socket, sys, time
out = sys.argv[1]
def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:  # the directory listdir had open
        return False
fds = [fd for fd in sorted(int(fd) for fd in os.listdir("/proc/self/fd")) if is_open(fd)]
info = {"pid": os.getpid(), "argv": sys.argv[2:], "fds": fds,
        "env": {k: v for k, v in os.environ.items() if k.startswith("LISTEN_")},
        "names": {}}
for fd in fds:
    if fd > 2:
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        info["names"][fd] = s.getsockname() if s.family != socket.AF_UNIX else s.getsockname()
        s.close()
with open(f"{out}.{os.getpid()}.tmp", "w") as f:
    json.dump(info, f)
os.rename(f"{out}.{os.getpid()}.tmp", f"{out}.{os.getpid()}")
time.sleep(1000)
"""


def reports(tmp_path, prefix):
    found = []
    for name in os.listdir(tmp_path):
        if name.startswith(prefix + ".") and not name.endswith(".tmp"):
            found.append(json.loads((tmp_path / name).read_text()))
    return found


def test_sockets_arrive_at_fd_3_with_systemd_variables(daemon, tmp_path):
    (tmp_path / "report.py").write_text(REPORT)
    web, admin = free_port(), free_port()
    d = daemon(f"""
        [socket:web]
        host = 127.0.0.1
        port = {web}

        [socket:admin]
        host = 127.0.0.1
        port = {admin}

        [socket:unused]
        path = {tmp_path}/unused.sock

        [watcher:app]
        cmd = {sys.executable} report.py {tmp_path}/app --fd $(circus.sockets.admin)
        working_dir = {tmp_path}
        sockets = web, admin

        [watcher:plain]
        cmd = {sys.executable} report.py {tmp_path}/plain
        working_dir = {tmp_path}
        """)
    wait_for(lambda: reports(tmp_path, "app") and reports(tmp_path, "plain"))
    app = reports(tmp_path, "app")[0]
    assert app["env"] == {"LISTEN_FDS": "2", "LISTEN_PID": str(app["pid"]),
                          "LISTEN_FDNAMES": "web:admin"}
    # Only stdio and its two sockets, in the listed order.
    assert app["fds"] == [0, 1, 2, 3, 4]
    assert app["names"]["3"] == ["127.0.0.1", web]
    assert app["names"]["4"] == ["127.0.0.1", admin]
    assert app["argv"] == ["--fd", "4"]
    plain = reports(tmp_path, "plain")[0]
    assert plain["env"] == {}
    assert plain["fds"] == [0, 1, 2]
    # The daemon still holds its sockets: the children share them.
    with socket.create_connection(("127.0.0.1", web)):
        pass
    d.stop()


def test_use_sockets_without_names_passes_all(daemon, tmp_path):
    (tmp_path / "report.py").write_text(REPORT)
    d = daemon(f"""
        [socket:b]
        path = {tmp_path}/b.sock

        [socket:a]
        path = {tmp_path}/a.sock

        [watcher:app]
        cmd = {sys.executable} report.py {tmp_path}/app
        working_dir = {tmp_path}
        use_sockets = true
        """)
    wait_for(lambda: reports(tmp_path, "app"))
    app = reports(tmp_path, "app")[0]
    assert app["env"]["LISTEN_FDNAMES"] == "a:b"
    assert app["names"] == {"3": f"{tmp_path}/a.sock", "4": f"{tmp_path}/b.sock"}
    d.stop()


SERVE = """\
import os, socket
listener = socket.socket(fileno=3)
listener.setblocking(True)
while True:
    conn, _ = listener.accept()
    conn.sendall(str(os.getpid()).encode())
    conn.close()
"""


def test_so_reuseport_gives_each_process_its_own_socket(daemon, tmp_path):
    (tmp_path / "serve.py").write_text(SERVE)
    port = free_port()
    d = daemon(f"""
        [socket:web]
        host = 127.0.0.1
        port = {port}
        so_reuseport = true

        [watcher:web]
        cmd = {sys.executable} serve.py
        working_dir = {tmp_path}
        use_sockets = true
        numprocesses = 2
        """)
    pids = d.wait_pids("web", 2)
    inodes = {os.stat(f"/proc/{pid}/fd/3").st_ino for pid in pids}
    assert len(inodes) == 2, "one listening socket per process"
    # The daemon's own socket holds the address but does not listen, so
    # every connection reaches a process; the kernel spreads them.
    answered = set()
    for _ in range(64):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            answered.add(int(conn.recv(16)))
    assert answered == pids
    d.stop()


def test_listsockets_reports_the_accept_queue(daemon, tmp_path):
    port = free_port()
    d = daemon(f"""
        [socket:web]
        host = 127.0.0.1
        port = {port}

        [socket:local]
        path = {tmp_path}/local.sock

        [watcher:idle]
        cmd = sleep 1000
        sockets = web, local
        """)
    d.wait_pids("idle", 1)
    waiting = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    local = socket.socket(socket.AF_UNIX)
    local.connect(str(tmp_path / "local.sock"))
    try:
        with d.client() as client:
            def queues():
                reply = client.call("listsockets")
                return {s["name"]: s["accept_queue"] for s in reply["sockets"]}
            wait_for(lambda: queues() == {"web": 3, "local": 1})
            reply = client.call("stats")
            assert {s["name"]: s["accept_queue"] for s in reply["sockets"]} == \
                {"web": 3, "local": 1}
    finally:
        for conn in [*waiting, local]:
            conn.close()
    d.stop()


def test_dual_stack_unix_umask_replace_and_interface(daemon, tmp_path):
    if not socket.has_ipv6:
        import pytest
        pytest.skip("no IPv6 here")
    both, lo = free_port(), free_port()
    stale = tmp_path / "app.sock"
    old = socket.socket(socket.AF_UNIX)
    old.bind(str(stale))
    old.close()  # a socket file left by a previous run
    d = daemon(f"""
        [socket:both]
        host = ::
        port = {both}
        family = AF_INET6

        [socket:local]
        path = {stale}
        umask = 077
        replace = true

        [socket:lo]
        host = 127.0.0.1
        port = {lo}
        interface = lo

        [watcher:idle]
        cmd = sleep 1000
        use_sockets = true
        """)
    d.wait_pids("idle", 1)
    for host in ("127.0.0.1", "::1"):
        with socket.create_connection((host, both), timeout=5):
            pass
    with socket.create_connection(("127.0.0.1", lo), timeout=5):
        pass
    assert stale.stat().st_mode & 0o777 == 0o700
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(stale))
    d.stop()
    assert not stale.exists(), "the daemon removes its Unix socket file"
