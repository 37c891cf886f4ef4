"""Locks across processes: several Python processes contending for one `store.lock`.

Each check starts fresh interpreters on the same store (the URI and backend options travel as
JSON), so nothing is shared but the medium itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from anystore import get_store

# Every worker increments one counter under the lock: read, pause, write. Without mutual
# exclusion, increments are lost.
COUNTER = """
import json, sys, time
from anystore import get_store
spec = json.loads(sys.argv[1])
store = get_store(spec["uri"], **spec["options"])
while time.time() < spec["start"]:
    time.sleep(0.001)
for _ in range(spec["rounds"]):
    with store.lock("counter", ttl=60, timeout=120):
        value = store.get("counter")
        time.sleep(0.002)
        store.put("counter", value + 1)
"""

# Takes the lock and dies without releasing it.
CRASH = """
import json, os, sys, time
from anystore import get_store
spec = json.loads(sys.argv[1])
store = get_store(spec["uri"], **spec["options"])
store.lock("job", ttl=spec["ttl"]).acquire()
print("held", time.time(), flush=True)
os._exit(1)
"""

# Calls a slow cached function; each real computation leaves a marker file.
CACHED = """
import json, os, sys, time
from pathlib import Path
from anystore import get_store
from anystore.decorators import anycache
spec = json.loads(sys.argv[1])
store = get_store(spec["uri"], **spec["options"])

@anycache(store=store, lock=True, lock_ttl=60)
def expensive(x):
    Path(spec["markers"], str(os.getpid())).touch()
    time.sleep(0.5)
    return x * 2

while time.time() < spec["start"]:
    time.sleep(0.001)
print(expensive(21), flush=True)
"""


def _spawn(script: str, **spec: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


def assert_exclusive_across_processes(
    uri: str, options: dict[str, Any] | None = None, processes: int = 4, rounds: int = 15
) -> None:
    """Several processes increment one counter under the lock; no increment may be lost."""
    options = options or {}
    get_store(uri, **options).put("counter", 0)
    start = time.time() + 1.5  # after every interpreter has started
    workers = [
        _spawn(COUNTER, uri=uri, options=options, start=start, rounds=rounds)
        for _ in range(processes)
    ]
    for worker in workers:
        _finish(worker)
    assert get_store(uri, **options).get("counter") == processes * rounds


def assert_crashed_holder_lapses(uri: str, options: dict[str, Any] | None = None) -> None:
    """A process that dies holding the lock blocks others only until its ttl has passed."""
    options = options or {}
    store = get_store(uri, **options)
    # A longer ttl when this machine was too slow to look while the first one still held.
    for ttl in (1.5, 4.0, 10.0):
        crashed = _spawn(CRASH, uri=uri, options=options, ttl=ttl)
        out, err = crashed.communicate(timeout=120)
        said, _, when = out.strip().partition(" ")
        assert said == "held", err
        acquired = float(when)
        lock = store.lock("job")
        blocked = not lock.acquire(blocking=False)
        if time.time() < acquired + ttl * 0.9:
            break  # looked while the dead holder's ttl still ran: the check counts
        if not blocked:
            lock.release()  # taken late, legitimately: try a longer ttl
    else:
        raise AssertionError("this machine was too slow to check a 10 s lock ttl")
    assert blocked, "a lock held by a dead process was free before its ttl ran out"
    with store.lock("job", timeout=ttl + 30):
        late = time.time() - (acquired + ttl)
    assert late < 5, f"the dead holder's lock was taken {late:.1f} s after its ttl ran out"


def assert_anycache_computes_once_across_processes(
    uri: str, markers: Path, options: dict[str, Any] | None = None, processes: int = 4
) -> None:
    """Processes asking for one uncached key at once: one computes, the others wait for it."""
    options = options or {}
    markers.mkdir(parents=True, exist_ok=True)
    start = time.time() + 1.5
    workers = [
        _spawn(CACHED, uri=uri, options=options, start=start, markers=str(markers))
        for _ in range(processes)
    ]
    assert [_finish(worker).strip() for worker in workers] == ["42"] * processes
    assert len(list(markers.iterdir())) == 1
