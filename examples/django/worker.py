#!/usr/bin/env python
"""A Celery-like background worker for the shop: it takes queued jobs from
the database, oldest first, and fulfils their orders.

Run by bigtop as ``[watcher:worker]`` (``python worker.py``, from this
directory). It tells bigtop it is ready (systemd's ``READY=1`` on
$NOTIFY_SOCKET) once Django is set up, prints one line per job, and on
SIGTERM or SIGINT finishes the job in hand, then exits with status 0.

Environment: the settings' variables (see shop/settings.py), and
SHOP_POLL_SECONDS (default 1): how long to wait when the queue is empty;
SHOP_JOB_SECONDS (default 0.2): how long a job pretends to work.
"""

import os
import select
import signal
import socket
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

import django  # noqa: E402

django.setup()

from django.db import OperationalError, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from orders.models import Job, Order  # noqa: E402

POLL_SECONDS = float(os.environ.get("SHOP_POLL_SECONDS") or 1)
JOB_SECONDS = float(os.environ.get("SHOP_JOB_SECONDS") or 0.2)
NAME = f"worker {os.getpid()}"


def log(message: str) -> None:
    print(f"{NAME}: {message}", flush=True)


def notify_ready() -> None:
    """Tell bigtop (or systemd) that this process is ready."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return  # not started with ready = notify
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux's abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(b"READY=1")


class Stop:
    """Set by SIGTERM/SIGINT. The handler only sets a flag, so a job in hand
    is finished; the wakeup fd cuts short the wait for new jobs."""

    def __init__(self) -> None:
        self.requested = False
        self.wakeup, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(write_end)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if not self.requested:
            log(f"{signal.Signals(signum).name}: stopping after the current job")
        self.requested = True

    def wait(self, seconds: float) -> None:
        """Sleep up to seconds, less if a stop is requested."""
        if not self.requested:
            select.select([self.wakeup], [], [], seconds)


def next_job() -> Job | None:
    return Job.objects.filter(status=Job.QUEUED).select_related("order").first()


def work(order: Order) -> None:
    """The slow part of a job: a real worker would charge a card, send a
    mail... Done outside any transaction, so the database is not locked
    meanwhile."""
    time.sleep(JOB_SECONDS)


def run_one(job: Job) -> bool:
    """Do job and record it; False if another worker recorded it first."""
    started = time.monotonic()
    work(job.order)  # if it raises, the worker exits and bigtop starts it again;
    # the job, still queued, is tried again
    now = timezone.now()
    with transaction.atomic():
        # Only one worker's update still finds the job queued: with several
        # workers a job may be worked on twice (at least once, as Celery's
        # late acknowledgement), but it is recorded once.
        claimed = Job.objects.filter(pk=job.pk, status=Job.QUEUED).update(
            status=Job.DONE, done_at=now, worker_pid=os.getpid())
        if not claimed:
            return False
        Order.objects.filter(pk=job.order_id).update(status=Order.FULFILLED, fulfilled_at=now)
    log(f"job {job.pk}: order {job.order_id} ({job.order.item}) fulfilled "
        f"in {time.monotonic() - started:.3f}s")
    return True


def main() -> int:
    stop = Stop()
    try:
        queued = Job.objects.filter(status=Job.QUEUED).count()
    except OperationalError as err:
        log(f"cannot read the queue: {err} (run `python manage.py migrate` first?)")
        return 1
    notify_ready()
    log(f"ready, {queued} job(s) queued")
    while not stop.requested:
        job = next_job()
        if job is None:
            stop.wait(POLL_SECONDS)
            continue
        run_one(job)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
