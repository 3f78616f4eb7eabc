"""bigtop-wsgi: real processes serving real sockets.

Each test binds a listening socket itself (as bigtopd does), starts
`bigtop-wsgi --fd N` on it, learns that it serves from the READY=1 datagram
it sends to a test-bound $NOTIFY_SOCKET, and talks HTTP to it. Every child
is killed at the end of its test, whatever happened.
"""

from __future__ import annotations

import functools
import http.client
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bigtop.wsgi import appload, listen

from .conftest import free_port

BIGTOP_WSGI = Path(sys.executable).with_name("bigtop-wsgi")
START_TIMEOUT = 30.0  # bounds on waits that end as soon as the event happens
EXIT_TIMEOUT = 20.0

APP = '''
import asyncio
import os
import socket
import time

NOT_CALLABLE = "a string"


def tell(message):
    """A datagram to the test: the request got this far."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), "\\0" + os.environ["TEST_EVENTS"])


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        tell("slow-started")
        time.sleep(1)
        body = b"slow done"
    elif path == "/echo":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    elif path == "/pid":
        body = str(os.getpid()).encode()
    else:
        body = b"hello wsgi " + path.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/slow":
        tell("slow-started")
        await asyncio.sleep(1)
        body = b"slow done"
    elif path != "/echo":
        body = b"hello asgi " + path.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class AsgiApp:
    async def __call__(self, scope, receive, send):
        await asgi(scope, receive, send)


asgi_object = AsgiApp()
'''


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def backend_param(name: str, app: str) -> object:
    marks = [] if has(name) else [pytest.mark.skip(reason=f"{name} is not installed")]
    return pytest.param(name, app, id=name, marks=marks)


BACKENDS = [
    backend_param("waitress", "hello:application"),
    backend_param("gevent", "hello:application"),
    backend_param("bjoern", "hello:application"),
    backend_param("uvicorn", "hello:asgi"),
]


class Notify:
    """A datagram socket in the abstract namespace, where the worker sends
    READY=1 and the test app its progress."""

    def __init__(self) -> None:
        self.name = f"bigtop-wsgi-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)

    @property
    def address(self) -> str:
        return "@" + self.name

    def receive(self, proc: subprocess.Popen[bytes], what: str) -> str:
        """The next datagram whose first line is ``what`` (others, such as a
        previous worker's STOPPING=1, are skipped); fails at once if the
        process exits first."""
        waited = 0.0
        self.sock.settimeout(0.2)
        while True:
            try:
                message = self.sock.recv(4096).decode()
                if message.splitlines()[0] == what:
                    return message
                continue
            except TimeoutError:
                waited += 0.2
            if proc.poll() is not None:
                pytest.fail(f"bigtop-wsgi exited ({proc.returncode}) before {what}")
            if waited > START_TIMEOUT:
                pytest.fail(f"no {what} after {START_TIMEOUT}s")


class Worker:
    def __init__(self, proc: subprocess.Popen[bytes], notify: Notify, log: Path):
        self.proc = proc
        self.notify = notify
        self.log = log

    def ready(self) -> dict[str, str]:
        message = self.notify.receive(self.proc, "READY=1")
        fields = dict(line.partition("=")[::2] for line in message.splitlines())
        assert fields.get("READY") == "1", message
        return fields

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=EXIT_TIMEOUT)

    def stderr(self) -> str:
        return self.log.read_text()

    def stdout(self) -> str:
        return self.log.with_suffix(".out").read_text()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "hello.py").write_text(APP)
    return tmp_path


@pytest.fixture
def notify() -> Iterator[Notify]:
    n = Notify()
    yield n
    n.sock.close()


@pytest.fixture
def spawn(site: Path, notify: Notify) -> Iterator[functools.partial[Worker]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], pass_fds: tuple[int, ...] = (), env: dict[str, str] | None = None,
              command: list[str] | None = None) -> Worker:
        log = site / f"worker-{len(procs)}.log"
        full_env = {**os.environ, "NOTIFY_SOCKET": notify.address, "TEST_EVENTS": notify.name,
                    **(env or {})}
        for key in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            if env is None or key not in env:
                full_env.pop(key, None)
        with open(log, "wb") as err, open(log.with_suffix(".out"), "wb") as out:
            proc = subprocess.Popen(command or [str(BIGTOP_WSGI), *args], cwd=site,
                                    env=full_env, pass_fds=pass_fds,
                                    stdout=out, stderr=err)
        procs.append(proc)
        return Worker(proc, notify, log)

    yield functools.partial(start)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=EXIT_TIMEOUT)


@pytest.fixture
def tcp() -> Iterator[socket.socket]:
    """A listening socket owned by the test, as bigtopd owns its sockets."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield sock
    sock.close()


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def request(port: int, method: str = "GET", path: str = "/", body: bytes | None = None,
            conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=START_TIMEOUT)
    try:
        c.request(method, path, body=body)
        response = c.getresponse()
        return response.status, response.read()
    finally:
        if conn is None:
            c.close()


def still_listening(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


# -- serving, one test per backend -------------------------------------------


@pytest.mark.parametrize(("backend", "app"), BACKENDS)
def test_serves_on_inherited_fd(spawn, tcp, backend, app):
    fd = tcp.fileno()
    worker = spawn(["--fd", str(fd), "--backend", backend, app], pass_fds=(fd,))
    fields = worker.ready()
    assert fields["STATUS"].startswith(f"{backend} serving {app}")
    assert f"on fd {fd} (127.0.0.1:{port_of(tcp)})" in fields["STATUS"]
    assert fields["MAINPID"] == str(worker.proc.pid)

    kind = "asgi" if backend == "uvicorn" else "wsgi"
    assert request(port_of(tcp), path="/a") == (200, f"hello {kind} /a".encode())
    assert request(port_of(tcp), "POST", "/echo", b"x" * 100_000) == (200, b"x" * 100_000)
    keep_alive = http.client.HTTPConnection("127.0.0.1", port_of(tcp), timeout=START_TIMEOUT)
    for n in range(3):  # several requests on one connection
        assert request(port_of(tcp), path=f"/{n}", conn=keep_alive)[0] == 200
    keep_alive.close()

    assert worker.stop() == 0
    assert still_listening(tcp)  # the shared socket was not shut down


@pytest.mark.parametrize(("app", "backend", "interface"), [
    ("hello:application", "waitress", "WSGI"),
    ("hello:asgi", "uvicorn", "ASGI"),
    ("hello:asgi_object", "uvicorn", "ASGI"),  # an object with an async __call__
])
def test_default_backend_follows_the_interface(spawn, tcp, app, backend, interface):
    if not has(backend):
        pytest.skip(f"{backend} is not installed")
    fd = tcp.fileno()
    worker = spawn(["--fd", str(fd), app], pass_fds=(fd,))
    assert worker.ready()["STATUS"].startswith(f"{backend} serving {app} ({interface})")
    assert request(port_of(tcp))[0] == 200
    assert worker.stop() == 0


# -- graceful stop ------------------------------------------------------------


@pytest.mark.parametrize(("backend", "app", "signum"), [
    (*param.values[:2], signal.SIGTERM) for param in BACKENDS  # type: ignore[attr-defined]
] + [
    ("waitress", "hello:application", signal.SIGQUIT),
    ("gevent", "hello:application", signal.SIGINT),
    ("uvicorn", "hello:asgi", signal.SIGQUIT),
], ids=lambda v: v.name if isinstance(v, signal.Signals) else None)
def test_stop_signal_finishes_request_in_progress(spawn, tcp, notify, backend, app, signum):
    if not has(backend):
        pytest.skip(f"{backend} is not installed")
    fd, port = tcp.fileno(), port_of(tcp)
    worker = spawn(["--fd", str(fd), "--backend", backend, app], pass_fds=(fd,))
    worker.ready()

    # An idle keep-alive connection must not hold the stop up (bjoern keeps
    # its connections open until the clients close them: docs/wsgi.md).
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=START_TIMEOUT)
    assert request(port, conn=idle)[0] == 200
    if backend == "bjoern":
        idle.close()

    result: list[tuple[int, bytes]] = []
    slow = threading.Thread(target=lambda: result.append(request(port, path="/slow")))
    slow.start()
    try:
        assert notify.receive(worker.proc, "slow-started") == "slow-started"
        worker.proc.send_signal(signum)
        assert worker.proc.wait(timeout=EXIT_TIMEOUT) == 0
    finally:
        slow.join(timeout=EXIT_TIMEOUT)
    assert result == [(200, b"slow done")]
    assert "Traceback" not in worker.stderr()
    idle.close()

    # Our copy of the socket is closed, the socket itself is not: another
    # worker serves it, as bigtopd's replacement would.
    assert still_listening(tcp)
    successor = spawn(["--fd", str(fd), "--backend", backend, app], pass_fds=(fd,))
    successor.ready()
    assert request(port)[0] == 200
    assert successor.stop() == 0


def test_graceful_timeout_bounds_the_stop(spawn, tcp, notify):
    fd, port = tcp.fileno(), port_of(tcp)
    worker = spawn(["--fd", str(fd), "--graceful-timeout", "0", "hello:application"],
                   pass_fds=(fd,))
    worker.ready()
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            request(port, path="/slow")
        except (OSError, http.client.HTTPException) as err:
            errors.append(err)

    client = threading.Thread(target=slow)
    client.start()
    try:
        assert notify.receive(worker.proc, "slow-started") == "slow-started"
        assert worker.stop() == 0
    finally:
        client.join(timeout=EXIT_TIMEOUT)
    assert "graceful timeout" in worker.stderr()


def test_stopping_is_notified(spawn, tcp, notify):
    fd = tcp.fileno()
    worker = spawn(["--fd", str(fd), "hello:application"], pass_fds=(fd,))
    worker.ready()
    worker.proc.send_signal(signal.SIGTERM)
    assert "STATUS=waitress stopping" in notify.receive(worker.proc, "STOPPING=1")
    assert worker.proc.wait(timeout=EXIT_TIMEOUT) == 0


# -- where the socket comes from ----------------------------------------------

ACTIVATE = textwrap.dedent('''
    """Test helper: put the given fds at 3, 4, ... as systemd does, then
    exec the command through `sh -c 'LISTEN_PID=$$ exec ...'`."""
    import fcntl, os, sys
    fds = [int(fd) for fd in sys.argv[1].split(",")]
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
    for fd in fds:
        os.close(fd)
    for index, fd in enumerate(high):
        os.dup2(fd, 3 + index)
        os.close(fd)
    os.execvp("sh", ["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', *sys.argv[2:]])
''')


def activated(site: Path, fds: list[int], args: list[str]) -> list[str]:
    helper = site / "activate.py"
    helper.write_text(ACTIVATE)
    return [sys.executable, str(helper), ",".join(map(str, fds)), str(BIGTOP_WSGI), *args]


def test_socket_activation_uses_fd_3(spawn, site, tcp):
    fd = tcp.fileno()
    worker = spawn([], pass_fds=(fd,), env={"LISTEN_FDS": "1"},
                   command=activated(site, [fd], ["hello:application"]))
    assert "on fd 3 (" in worker.ready()["STATUS"]
    assert request(port_of(tcp)) == (200, b"hello wsgi /")
    assert worker.stop() == 0


def test_socket_activation_by_name(spawn, site, tcp):
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(8)
    try:
        fds = [other.fileno(), tcp.fileno()]
        worker = spawn([], pass_fds=tuple(fds),
                       env={"LISTEN_FDS": "2", "LISTEN_FDNAMES": "admin:web"},
                       command=activated(site, fds, ["--fd-name", "web", "hello:application"]))
        assert f"on fd 4 (127.0.0.1:{port_of(tcp)})" in worker.ready()["STATUS"]
        assert request(port_of(tcp)) == (200, b"hello wsgi /")
        assert worker.stop() == 0
    finally:
        other.close()


@pytest.mark.parametrize("how", ["--fd", "LISTEN_FDS"])
def test_under_bigtopd(daemon, site, how):
    """Two workers on a socket the daemon owns, ready by READY=1: given as
    `--fd $(circus.sockets.web)`, or found by socket activation alone."""
    port = free_port()
    cmd = f"{BIGTOP_WSGI} --fd $(circus.sockets.web) --backend gevent hello:application"
    sockets = ""
    if how == "LISTEN_FDS":
        cmd, sockets = f"{BIGTOP_WSGI} hello:application", "sockets = web"
    d = daemon(f"""
        [socket:web]
        host = 127.0.0.1
        port = {port}

        [watcher:web]
        cmd = {cmd}
        numprocesses = 2
        ready = notify
        ready_timeout = 30
        {sockets}
    """)
    d.wait_ready("web", timeout=START_TIMEOUT)
    workers = d.pids("web")
    assert len(workers) == 2
    for _ in range(5):
        status, body = request(port, path="/pid")
        assert status == 200 and int(body) in workers
    assert d.stop() == 0
    assert "Traceback" not in d.out_text() + d.log_text()


def test_listen_fds_for_another_process_are_ignored(spawn):
    worker = spawn(["hello:application"], env={"LISTEN_FDS": "1", "LISTEN_PID": "1"})
    assert worker.proc.wait(timeout=EXIT_TIMEOUT) == 2
    assert "no socket to serve on" in worker.stderr()
    assert "LISTEN_PID=1 is not this process" in worker.stderr()


@pytest.mark.parametrize(("backend", "app"), BACKENDS)
def test_inherited_unix_socket_is_left_in_place(spawn, site, backend, app):
    path = site / "web.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen(8)
    try:
        worker = spawn(["--fd", str(sock.fileno()), "--backend", backend, app],
                       pass_fds=(sock.fileno(),))
        assert f"unix:{path}" in worker.ready()["STATUS"]
        kind = "asgi" if backend == "uvicorn" else "wsgi"
        assert unix_get(path) == f"hello {kind} /".encode()
        assert worker.stop() == 0
        assert path.exists() and still_listening(sock)
    finally:
        sock.close()


def unix_get(path: Path) -> bytes:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(START_TIMEOUT)
        client.connect(str(path))
        client.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head
    return body


def test_standalone_unix_socket_is_removed_on_exit(spawn, site):
    path = site / "own.sock"
    worker = spawn(["--host", f"unix:{path}", "hello:application"])
    worker.ready()
    assert unix_get(path) == b"hello wsgi /"
    assert worker.stop() == 0
    assert not path.exists()


def test_standalone_port(spawn):
    worker = spawn(["--port", "0", "hello:application"])
    port = int(re.search(r"127\.0\.0\.1:(\d+)", worker.ready()["STATUS"]).group(1))
    assert request(port) == (200, b"hello wsgi /")
    assert worker.stop() == 0


@pytest.mark.parametrize(("make", "message"), [
    ("pipe", "fd {fd} is not a socket"),
    ("socketpair", "fd {fd} is not a listening stream socket"),
    ("closed", "fd {fd} is not open in this process"),
])
def test_fd_that_is_not_a_listening_socket(spawn, make, message):
    keep: list[object] = []
    if make == "pipe":
        r, w = os.pipe()
        keep += [r, w]
        fd = r
    elif make == "socketpair":
        a, b = socket.socketpair()
        keep += [a, b]
        fd = a.fileno()
    else:
        fd = 999
    try:
        worker = spawn(["--fd", str(fd), "hello:application"],
                       pass_fds=(fd,) if make != "closed" else ())
        assert worker.proc.wait(timeout=EXIT_TIMEOUT) == 2
        assert worker.stderr().strip() == f"bigtop-wsgi: --fd: {message.format(fd=fd)}"
    finally:
        for item in keep:
            item.close() if isinstance(item, socket.socket) else os.close(item)


def test_ready_on_a_path_notify_socket(spawn, site, tcp):
    path = site / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.settimeout(START_TIMEOUT)
        fd = tcp.fileno()
        worker = spawn(["--fd", str(fd), "hello:application"], pass_fds=(fd,),
                       env={"NOTIFY_SOCKET": str(path)})
        assert "READY=1" in receiver.recv(4096).decode().splitlines()
        assert worker.stop() == 0


# -- errors -------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "message"), [
    ("nosuchmodule:app", "no module named 'nosuchmodule'"),
    ("hello:nothing", "'hello:nothing': 'hello' has no attribute 'nothing'"),
    ("hello:NOT_CALLABLE", "'hello:NOT_CALLABLE' is not callable (it is 'str')"),
    ("noapp", "module 'noapp' has no 'application' or 'app'"),
    ("broken:app", "importing 'broken' failed: RuntimeError: boom at import"),
    ("needsdep:app", "importing 'needsdep' failed: No module named 'no_such_dependency'"),
    ("syntax:app", "importing 'syntax' failed:"),
    ("hello:", "expected MODULE:APP"),
])
def test_bad_app_spec(spawn, site, tcp, spec, message):
    (site / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    (site / "needsdep.py").write_text("import no_such_dependency\n")
    (site / "syntax.py").write_text("def app(:\n")
    (site / "noapp.py").write_text("x = 1\n")
    fd = tcp.fileno()
    worker = spawn(["--fd", str(fd), spec], pass_fds=(fd,))
    assert worker.proc.wait(timeout=EXIT_TIMEOUT) == 2
    err = worker.stderr()
    assert err.startswith("bigtop-wsgi: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err

    debug = spawn(["--fd", str(fd), "--debug", spec], pass_fds=(fd,))
    assert debug.proc.wait(timeout=EXIT_TIMEOUT) == 2
    assert "Traceback" in debug.stderr() or spec == "hello:"


@pytest.mark.parametrize(("backend", "app", "fit"), [
    ("uvicorn", "hello:application", "backends that do: waitress, gevent, bjoern"),
    ("waitress", "hello:asgi", "backends that do: uvicorn"),
    ("gevent", "hello:asgi_object", "backends that do: uvicorn"),
])
def test_backend_that_does_not_fit_the_app(spawn, tcp, backend, app, fit):
    if not has(backend):
        pytest.skip(f"{backend} is not installed")
    fd = tcp.fileno()
    worker = spawn(["--fd", str(fd), "--backend", backend, app], pass_fds=(fd,))
    assert worker.proc.wait(timeout=EXIT_TIMEOUT) == 2
    err = worker.stderr().strip()
    assert err.startswith(f"bigtop-wsgi: backend {backend} does not serve"), err
    assert err.endswith(fit) and len(err.splitlines()) == 1


def test_missing_backend_library_is_named(site, tcp):
    code = ("import sys; sys.modules['gevent'] = None\n"
            "from bigtop.wsgi.cli import main\n"
            f"sys.exit(main(['--fd', '{tcp.fileno()}', '--backend', 'gevent', "
            "'hello:application']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=site, pass_fds=(tcp.fileno(),),
                          capture_output=True, text=True, timeout=EXIT_TIMEOUT)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("bigtop-wsgi: backend gevent needs package gevent: "
                                   "pip install 'bigtop[wsgi]'")


def test_help_loads_no_server_library():
    proc = subprocess.run([str(BIGTOP_WSGI), "--help"], capture_output=True, text=True,
                          timeout=EXIT_TIMEOUT)
    assert proc.returncode == 0 and "--fd N" in proc.stdout and "--graceful-timeout" in proc.stdout
    code = ("import sys\n"
            "from bigtop.wsgi import cli\n"
            "cli.build_parser()\n"
            "print(sorted(m for m in ('waitress', 'gevent', 'uvicorn', 'bjoern', 'asyncio')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=EXIT_TIMEOUT).stdout
    assert out.strip() == "[]"


# -- options ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["waitress", "gevent"])
def test_access_log_is_off_unless_asked(spawn, tcp, backend):
    fd, port = tcp.fileno(), port_of(tcp)
    quiet = spawn(["--fd", str(fd), "--backend", backend, "hello:application"], pass_fds=(fd,))
    quiet.ready()
    assert request(port, path="/quiet")[0] == 200
    assert quiet.stop() == 0
    assert "/quiet" not in quiet.stdout() + quiet.stderr()

    logged = spawn(["--fd", str(fd), "--backend", backend, "--access-log", "hello:application"],
                   pass_fds=(fd,))
    logged.ready()
    assert request(port, path="/logged")[0] == 200
    assert logged.stop() == 0
    assert re.search(r'"GET /logged HTTP/1\.1" 200', logged.stdout()), logged.stdout()


def test_chdir_and_pythonpath(spawn, site, tcp):
    (site / "project").mkdir()
    (site / "lib").mkdir()
    (site / "lib" / "greeting.py").write_text("TEXT = b'from lib'\n")
    (site / "project" / "webapp.py").write_text(textwrap.dedent('''
        import greeting

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [greeting.TEXT]
    '''))
    fd = tcp.fileno()
    worker = spawn(["--fd", str(fd), "--chdir", str(site / "project"),
                    "--pythonpath", str(site / "lib"), "--threads", "2", "webapp:app"],
                   pass_fds=(fd,))
    worker.ready()
    assert request(port_of(tcp)) == (200, b"from lib")
    assert worker.stop() == 0


# -- in-process: the parts with no server -----------------------------------


def test_interface_detection():
    def wsgi(environ, start_response):
        return []

    async def asgi(scope, receive, send):
        pass

    class Asgi3:
        async def __call__(self, scope, receive, send):
            pass

    class AsyncOther:
        async def __call__(self, request):
            pass

    class Wsgi:
        def __call__(self, environ, start_response):
            return []

    assert appload.is_asgi(asgi) and appload.is_asgi(functools.partial(asgi))
    assert appload.is_asgi(Asgi3())
    assert not appload.is_asgi(wsgi) and not appload.is_asgi(Wsgi())
    assert not appload.is_asgi(AsyncOther()) and not appload.is_asgi(Asgi3)
    assert appload.detect_interface(wsgi, "asgi") == "asgi"


def test_systemd_fd_reads_and_clears_the_environment():
    pid = str(os.getpid())
    env = {"LISTEN_PID": pid, "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b", "OTHER": "1"}
    assert listen.systemd_fd("b", env) == 4
    assert env == {"OTHER": "1"}
    assert listen.systemd_fd(None, {"LISTEN_PID": pid, "LISTEN_FDS": "1"}) == 3
    assert listen.systemd_fd(None, {"LISTEN_PID": "1", "LISTEN_FDS": "1"}) is None
    assert listen.systemd_fd(None, {}) is None
    with pytest.raises(listen.ListenError, match="no such name in LISTEN_FDNAMES"):
        listen.systemd_fd("c", {"LISTEN_PID": pid, "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"})


def test_backlog_of_an_inherited_socket_is_kept():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(77)
        assert listen.current_backlog(sock) == 77
