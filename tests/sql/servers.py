"""Private PostgreSQL and MariaDB servers for fault tests, on free loopback ports in tmp dirs.

The shared services on 5432/3306 are never stopped, stalled or reconfigured; these private
instances are, by PID. PostgreSQL refuses to run as root, so its cluster belongs to the
`postgres` user; mariadbd runs as `mysql`, with grant tables skipped (loopback only, throwaway).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.services import free_port, in_ci, stop_processes

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db")


@dataclass
class PrivateServer:
    """A running private server: its URL, port, main process and data directory."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    stop_signal: int = signal.SIGTERM

    def _pids(self) -> list[int]:
        # The main process and its children (PostgreSQL serves each connection from a child).
        pids = [self.process.pid]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                pids.append(int(entry))
        return pids

    def _signal(self, number: int) -> None:
        for pid in self._pids():
            try:
                os.kill(pid, number)
            except ProcessLookupError:
                # A child (a PostgreSQL backend of a closed connection) exited since _pids().
                if pid == self.process.pid:
                    raise

    def stall(self) -> None:
        """SIGSTOP the server's processes, and wait until they are stopped: the kernel keeps
        accepting, nothing answers."""
        stop_processes(self._pids)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        """Resume, terminate by PID, and remove the data directory."""
        if self.process.poll() is None:
            self.resume()
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _missing(what: str) -> None:
    if in_ci():
        pytest.fail(f"{what} is not installed; CI needs it")
    pytest.skip(f"{what} is not installed")


def _owned_tmp(user: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=f"anystore-{user}-"))
    entry = pwd.getpwnam(user)
    os.chown(directory, entry.pw_uid, entry.pw_gid)
    return directory


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(1200):  # up to a minute on a busy machine
        if process.poll() is not None:
            pytest.fail(f"the private {what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"the private {what} did not start")


def start_postgres() -> PrivateServer:
    """initdb a throwaway cluster (as `postgres`) and start it on a free port."""
    if not (PG_BIN / "initdb").exists():
        _missing("PostgreSQL 15 (initdb)")
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    directory = _owned_tmp(user) if os.geteuid() == 0 else Path(tempfile.mkdtemp())
    data = directory / "data"
    run_as = user if os.geteuid() == 0 else None  # PostgreSQL refuses to run as root
    subprocess.run(
        [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
        user=run_as,
    )
    port = free_port()
    command = [str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(directory)]
    settings = ["listen_addresses=127.0.0.1", "fsync=off", "shared_buffers=16MB"]
    for setting in settings:
        command += ["-c", setting]
    with open(directory / "log", "wb") as log:  # the server keeps its own descriptor
        process = subprocess.Popen(command, stdout=log, stderr=log, user=run_as)
    _wait_for_port(port, process, "PostgreSQL")
    time.sleep(0.3)  # accepting TCP comes a moment before accepting logins
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    # SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for pooled sessions to leave).
    return PrivateServer(url, port, process, directory, signal.SIGINT)


def start_mariadb() -> PrivateServer:
    """mariadb-install-db a throwaway data dir (as `mysql`) and start mariadbd on a free port."""
    install_db = INSTALL_DB
    if install_db is None or not Path(MARIADBD).exists():
        _missing("MariaDB (mariadbd, mariadb-install-db)")
        raise AssertionError("unreachable")
    user = "mysql" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    directory = _owned_tmp(user) if os.geteuid() == 0 else Path(tempfile.mkdtemp())
    data = directory / "data"
    subprocess.run(
        [install_db, "--no-defaults", f"--datadir={data}", f"--user={user}",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    port = free_port()
    command = [
        MARIADBD, "--no-defaults", f"--datadir={data}", f"--user={user}", f"--port={port}",
        "--bind-address=127.0.0.1", f"--socket={directory}/sock", "--skip-grant-tables",
        f"--pid-file={directory}/pid", "--innodb-buffer-pool-size=16M", "--skip-log-bin",
    ]  # fmt: skip
    with open(directory / "log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
    _wait_for_port(port, process, "MariaDB")
    import pymysql  # type: ignore[import-untyped]

    for _ in range(100):
        try:
            connection = pymysql.connect(host="127.0.0.1", port=port, user="root")
            break
        except pymysql.err.OperationalError:
            time.sleep(0.1)
    else:
        pytest.fail("the private MariaDB accepts no logins")
    with connection.cursor() as cursor:
        cursor.execute("CREATE DATABASE IF NOT EXISTS test")
    connection.close()
    return PrivateServer(f"mysql://root@127.0.0.1:{port}/test", port, process, directory)
