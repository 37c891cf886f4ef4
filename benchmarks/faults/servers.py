"""Private server instances for the fault runs: Redis, PostgreSQL, MariaDB and moto's S3.

Each server runs from a folder of its own under the run's temporary directory, on a free port of
127.0.0.1, in a process group of its own (its PID is the group's id), so that a kill, a SIGSTOP or
the final clean-up reaches every process of that server and nothing else. The shared services on
5432/3306/6379 are never touched. Every started process is tracked and killed by PID at exit,
whatever ends the script (an error, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

PG_BIN = Path("/usr/lib/postgresql/15/bin")
# Processes this script started and has not reaped yet, by PID (servers and workers).
_tracked: dict[int, subprocess.Popen[Any]] = {}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(command: list[str], log: IO[bytes] | int = subprocess.DEVNULL, **kwargs: Any) -> Any:
    """Start `command` in a new process group and track it for the clean-up at exit."""
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
    )
    _tracked[process.pid] = process
    return process


def descendants(pid: int) -> list[int]:
    """The PIDs of every living process below `pid` (children, their children...), from /proc.

    A process group is not enough: PostgreSQL's backends leave the postmaster's group (setsid),
    and they are the processes that serve open connections.
    """
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
                ppid = int(handle.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found.extend(children)
        todo.extend(children)
    return found


def signal_group(process: subprocess.Popen[Any], signum: int) -> None:
    """Send `signum` to `process`, its process group and every process below it, by PID."""
    targets = [process.pid, *descendants(process.pid)]
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
    for pid in targets:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def reap(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group led by `process` and wait for its leader."""
    signal_group(process, signal.SIGKILL)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    _tracked.pop(process.pid, None)


def kill_all() -> None:
    """Kill every process this script started and still tracks (at exit, or on a signal)."""
    for process in list(_tracked.values()):
        reap(process)


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM/SIGHUP become SystemExit, so that every `finally` runs and atexit cleans up.
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    """Kill tracked processes at exit, and turn SIGINT/SIGTERM/SIGHUP into a normal exit."""
    atexit.register(kill_all)
    # Ctrl-C raises KeyboardInterrupt even where SIGINT came in ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)


def _account(name: str) -> tuple[int, int] | None:
    """(uid, gid) of the OS user `name` when we run as root (servers refuse root), else None."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def _as_user(account: tuple[int, int] | None) -> dict[str, Any]:
    if account is None:
        return {}
    return {"user": account[0], "group": account[1], "extra_groups": []}


class Server:
    """One private server: start, SIGKILL, restart, SIGSTOP/SIGCONT, and stop for good."""

    name = "server"

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.folder = base / self.name
        self.folder.mkdir(parents=True)
        self.process: subprocess.Popen[Any] | None = None
        self.log_path = self.folder.parent / f"{self.name}.log"
        self.prepare()

    # -- what a subclass provides ------------------------------------------------------------

    def prepare(self) -> None:
        """Create the data folder (once, before the first start)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    # The OS user a server that refuses root runs as (when we are root), or None.
    os_user: str | None = None

    def account(self) -> tuple[int, int] | None:
        return _account(self.os_user) if self.os_user else None

    def initialise(self, command: list[str]) -> None:
        """Run the data folder's init `command` as the server's user, who then owns the folder."""
        account = self.account()
        if account:
            os.chown(self.folder, *account)
        subprocess.run(
            command,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            **_as_user(account),
        )

    def ready(self) -> bool:
        """True when the server answers a real request (not only a TCP connect)."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def uri(self, run: str) -> str:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {}

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, wait: float = 60.0) -> float:
        """Start the server and wait until it answers; return the seconds that took."""
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = spawn(self.command(), log, **_as_user(self.account()))
        deadline = started + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")
            if self.ready():
                return time.monotonic() - started
            time.sleep(0.1)
        reap(self.process)
        raise RuntimeError(f"{self.name} did not answer within {wait:.0f} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL every process of the server (a crash), and wait for it."""
        if self.process is not None:
            reap(self.process)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP every process of the server: it keeps its sockets but answers nothing."""
        assert self.process is not None
        signal_group(self.process, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        if self.process is not None:
            signal_group(self.process, signal.SIGCONT)

    def stop(self) -> None:
        """Stop for good (same as a kill: nothing of a private instance is kept)."""
        self.kill()


class RedisServer(Server):
    name = "redis"

    def command(self) -> list[str]:
        return [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
        ]

    def ready(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def uri(self, run: str) -> str:
        return f"redis://127.0.0.1:{self.port}/0/{run}"


class PostgresServer(Server):
    name = "postgresql"
    os_user = "postgres"

    def prepare(self) -> None:
        self.data = self.folder / "data"
        self.initialise(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ]
        )

    def command(self) -> list[str]:
        # fsync off: a SIGKILL of the server loses nothing the kernel already holds.
        return [
            str(PG_BIN / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.folder),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=32MB",
        ]

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=self.port,
                user="postgres",
                dbname="postgres",
                connect_timeout=1,
            ) as connection:
                connection.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def uri(self, run: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres?table={run}"


class MariaServer(Server):
    name = "mariadb"
    os_user = "mysql"

    def prepare(self) -> None:
        self.data = self.folder / "data"
        self.initialise(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ]
        )
        self.created = False

    def command(self) -> list[str]:
        # --no-defaults first: no option of the system's my.cnf (shared port, socket) applies.
        return [
            shutil.which("mariadbd") or "/usr/sbin/mariadbd",
            "--no-defaults",
            f"--datadir={self.data}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.folder}/sock",
            f"--pid-file={self.folder}/pid",
            f"--log-error={self.folder}/error.log",
            "--skip-grant-tables",
            "--skip-log-bin",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--max-connections=300",
        ]

    def ready(self) -> bool:
        import pymysql  # type: ignore[import-untyped]

        try:
            connection = pymysql.connect(
                host="127.0.0.1", port=self.port, user="root", connect_timeout=1
            )
        except pymysql.Error:
            return False
        with connection, connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE IF NOT EXISTS anystore")
        return True

    def uri(self, run: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/anystore?table={run}"


class MotoServer(Server):
    """moto's S3 server; a restart loses every bucket (it keeps everything in memory)."""

    name = "s3"
    bucket = "reliability"
    # False while a restart run measures what a store does against a server without its bucket.
    create_bucket = True

    def command(self) -> list[str]:
        server = Path(sys.executable).parent / "moto_server"
        return [str(server), "-H", "127.0.0.1", "-p", str(self.port)]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        if not super().ready():
            return False
        if self.create_bucket:
            try:
                self.make_bucket()
            except Exception:  # botocore's errors while moto still starts up
                return False
        return True

    def make_bucket(self) -> None:
        """Create the bucket (after a start or a restart, as an operator would)."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")
        try:
            client.create_bucket(Bucket=self.bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass

    def uri(self, run: str) -> str:
        return f"s3://{self.bucket}/{run}"

    def options(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint}


SERVERS: dict[str, type[Server]] = {
    "postgresql": PostgresServer,
    "mariadb": MariaServer,
    "redis": RedisServer,
    "s3": MotoServer,
}
