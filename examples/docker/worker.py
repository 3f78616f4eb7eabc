"""The container's background worker: every few seconds it asks the web
processes who they are (as the quickstart's ticker does) and prints the
answer. On SIGTERM, bigtopd stopping it, it finishes the round in hand and
exits with status 0."""

import signal
import sys
import time
import urllib.request

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/"
interval = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
stopping = False


def stop(signum, frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
rounds = 0
while not stopping:
    rounds += 1
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            answer = response.read().decode().strip()
    except OSError as err:
        answer = f"no answer: {err}"
    print(f"round {rounds}: {answer}", flush=True)
    deadline = time.monotonic() + interval
    while not stopping and time.monotonic() < deadline:
        time.sleep(0.05)
print(f"stopping after {rounds} rounds", flush=True)
