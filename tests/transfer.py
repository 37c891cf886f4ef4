"""Moving a 200 MB value through `open()` in a fresh process, measuring its peak memory."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import hashlib
from anystore import get_store

def peak_mb():
    # VmHWM belongs to this process's own address space; getrusage's ru_maxrss would carry
    # the parent's peak across fork and exec.
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) // 1024

store = get_store({arguments})
store.put("warm-up", b"x")  # the client is connected and loaded: the baseline
store.delete("warm-up")
baseline = peak_mb()
chunk = bytes(range(256)) * 4096
digest = hashlib.sha256()
with store.open("huge", "wb") as handle:
    for i in range(200):
        piece = chunk[i:] + chunk[:i]
        digest.update(piece)
        handle.write(piece)
assert store.info("huge").size == 200 * len(chunk)
read = hashlib.sha256()
with store.open("huge", "rb") as handle:
    while piece := handle.read(1 << 20):
        read.update(piece)
assert read.hexdigest() == digest.hexdigest()
store.delete("huge")
print(baseline, peak_mb())
"""


def move_200mb(arguments: str) -> tuple[int, int]:
    """Run the transfer on `get_store(<arguments>)`; return (baseline MB, peak MB)."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(arguments=arguments)],
        capture_output=True,
        text=True,
        check=True,
    )
    baseline, peak = map(int, result.stdout.split()[-2:])
    return baseline, peak
