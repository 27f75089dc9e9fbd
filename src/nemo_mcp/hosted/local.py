"""Redis and HAProxy as child processes on loopback, configured from `deploy/`.

For tests, benchmarks and trying hosted mode on one machine: each runs in a folder of
its own on a free loopback port, and is ended (by its own pid) when the block ends.

    with RedisServer(folder) as redis:          # deploy/redis.conf, port and dir overridden
        redis.url                               # redis://127.0.0.1:<port>/0
    with RedisClusterServers(folder) as cluster:  # three masters in cluster mode
        cluster.url                             # redis://127.0.0.1:<a node's port>/0
    with Haproxy(folder, ["127.0.0.1:8001", ...]) as lb:
        lb.url                                  # http://127.0.0.1:<port>/mcp
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from typing_extensions import Self

#: The repository's deployment files (present in a source checkout, not in a wheel).
DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
#: How many replicas `deploy/haproxy.cfg` names.
HAPROXY_REPLICAS = 3
START_SECONDS = 20.0


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: The Debian package of each program run here.
PACKAGES = {"redis-server": "redis-server", "haproxy": "haproxy"}


def missing(program: str) -> str | None:
    """Why `program` cannot be run here, or None when it can."""
    if shutil.which(program) is None:
        return f"{program} is not installed (Debian: apt-get install {PACKAGES[program]})"
    if not DEPLOY.is_dir():
        return f"the deployment files are not at {DEPLOY} (run from a source checkout)"
    return None


def _wait_port(name: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.02)
    output = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    _end(process)
    raise RuntimeError(f"{name} did not start on port {port}: {output}")


def _end(process: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    if process.poll() is not None:
        return
    if kill:
        process.kill()
    else:
        process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _Child:
    """One program run in `folder` on `port`, its output in `<folder>/<program>.log`."""

    program = ""

    def __init__(self, folder: Path, port: int | None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        return None  # this process's own

    def start(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / f"{self.program}.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv(),
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_port(self.program, self.port, self.process, log)
        return self

    def stop(self) -> None:
        if self.process is not None:
            _end(self.process)
            self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer(_Child):
    """`redis-server deploy/redis.conf` on a free loopback port, its data in `folder`."""

    program = "redis-server"

    def __init__(self, folder: Path, *, port: int | None = None) -> None:
        super().__init__(folder, port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        conf = str(DEPLOY / "redis.conf")
        port, folder = str(self.port), str(self.folder)
        return [self.program, conf, "--port", port, "--bind", "127.0.0.1", "--dir", folder]

    def kill(self) -> None:
        """SIGKILL: what was written and flushed must survive a restart."""
        if self.process is not None:
            _end(self.process, kill=True)


class RedisClusterServers:
    """A Redis Cluster of `masters` `redis-server`s in cluster mode (no replicas), each in
    a folder of its own under `folder`, the slots spread by `redis-cli --cluster create`.

        with RedisClusterServers(folder) as cluster:
            cluster.url                         # redis://127.0.0.1:<first node's port>/0
    """

    def __init__(self, folder: Path, *, masters: int = 3) -> None:
        self.folder = folder
        self.nodes = [_ClusterNode(folder / f"node{n}") for n in range(masters)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> Self:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        made = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=START_SECONDS,
        )
        if made.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {made.stdout}{made.stderr}")
        deadline = time.monotonic() + START_SECONDS
        for node in self.nodes:  # every node must see every slot served
            while "cluster_state:ok" not in node.cli("cluster", "info"):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the Redis Cluster did not settle")
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cluster_port() -> int:
    """A free loopback port whose cluster bus port (10,000 above) is free too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 55000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class _ClusterNode(RedisServer):
    def __init__(self, folder: Path) -> None:
        super().__init__(folder, port=_cluster_port())

    def argv(self) -> list[str]:
        return [
            *super().argv(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(self.folder / "nodes.conf"),
            "--cluster-node-timeout",
            "5000",
            "--appendfsync",
            "everysec",
        ]

    def cli(self, *command: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *command],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        return done.stdout


class Haproxy(_Child):
    """`haproxy -f deploy/haproxy.cfg` in front of `replicas` (host:port), on a free port."""

    program = "haproxy"

    def __init__(
        self, folder: Path, replicas: Sequence[str], *, port: int | None = None, check_ms: int = 500
    ) -> None:
        if not 1 <= len(replicas) <= HAPROXY_REPLICAS:
            raise ValueError(f"deploy/haproxy.cfg names {HAPROXY_REPLICAS} replicas")
        super().__init__(folder, port)
        self.replicas = list(replicas)
        self.check_ms = check_ms

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def argv(self) -> list[str]:
        return [self.program, "-db", "-f", str(DEPLOY / "haproxy.cfg")]

    def environment(self) -> dict[str, str]:
        """The variables `deploy/haproxy.cfg` reads."""
        env = {"PATH": os.environ.get("PATH", "")}
        env["NEMO_LB_BIND"] = f"127.0.0.1:{self.port}"
        env["NEMO_CHECK_INTER"] = f"{self.check_ms}ms"
        for n in range(HAPROXY_REPLICAS):
            # A replica not given points at a port nothing listens on: marked down at once.
            env[f"NEMO_REPLICA_{n + 1}"] = (
                self.replicas[n] if n < len(self.replicas) else "127.0.0.1:1"
            )
        return env

    def check(self) -> subprocess.CompletedProcess[str]:
        """`haproxy -c`: is the configuration valid with these variables?"""
        return subprocess.run(
            [self.program, "-c", "-f", str(DEPLOY / "haproxy.cfg")],
            env=self.environment(),
            capture_output=True,
            text=True,
            check=False,
        )


__all__ = [
    "DEPLOY",
    "HAPROXY_REPLICAS",
    "Haproxy",
    "RedisClusterServers",
    "RedisServer",
    "free_port",
    "missing",
]
