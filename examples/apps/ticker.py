"""Something visibly alive: asks the web workers who they are, every second."""

import sys
import time
import urllib.request

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8090/"
tick = 0
while True:
    tick += 1
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            answer = response.read().decode().strip()
    except OSError as err:
        answer = f"no answer: {err}"
    print(f"tick {tick}: {answer}", flush=True)
    time.sleep(1)
