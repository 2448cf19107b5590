"""The sandbox: real sshd nodes, a moto server, an SMTP server, and Airflow connections for them.

Each node is a real OpenSSH `sshd` listening on port 22 of its own loopback address
(127.0.X.11, 127.0.X.12, ... with X chosen free, so that two sandboxes can run side by side).
Every SSH session on a node gets::

    PATH=<node>/bin:/usr/local/bin:/usr/bin:/bin   (the simulated tools come first)
    SANDBOX_NODE_ROOT=<node>     SANDBOX_NODE_NAME=node1     SANDBOX_NODE_ADDRESS=127.0.X.11

Simulated tools are the files of ``tests/sandbox/tools/<kind>/``: each is copied into every
node's ``bin`` (``riak.py`` becomes ``riak``), with the venv's Python as interpreter. They keep
their state under ``$SANDBOX_NODE_ROOT/state/<kind>/``.

All nodes share one host key (like hosts built from one image). The Airflow SSH connection
carries it as the ``host_key`` extra, so host keys stay verified for every node, sync and async.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent / "tools"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_CONN_ID = "backup_ssh"
AWS_CONN_ID = "aws_default"
SMTP_CONN_ID = "smtp_default"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_free(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
        return True


def pick_subnet(count: int) -> int:
    """A third octet X such that port 22 is free on 127.0.X.11 .. 127.0.X.(10+count)."""
    start = (os.getpid() % 200) + 20
    for offset in range(200):
        octet = 20 + (start + offset) % 220
        if all(_port_free(f"127.0.{octet}.{11 + i}", 22) for i in range(count)):
            return octet
    raise RuntimeError("no free loopback block for sandbox sshd nodes")


def wait_until(predicate, timeout: float = 15.0, what: str = "condition", interval: float = 0.05):
    """Test-side helper: poll `predicate` until it returns something truthy, and return that
    (never used by product code, where every wait is a sensor)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"sandbox: {what} not reached within {timeout}s")


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class SandboxNode:
    name: str
    address: str
    root: Path
    sshd_config: Path
    process: subprocess.Popen | None = None

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def state_dir(self, kind: str) -> Path:
        path = self.state / kind
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self) -> dict[str, str]:
        """The environment an SSH session on this node sees (for running a tool directly)."""
        return {
            **os.environ,
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin",
            "SANDBOX_NODE_ROOT": str(self.root),
            "SANDBOX_NODE_NAME": self.name,
            "SANDBOX_NODE_ADDRESS": self.address,
        }

    def start_sshd(self) -> None:
        if self.process and self.process.poll() is None:
            return
        log = open(self.root / "sshd.log", "ab")  # noqa: SIM115 - kept open for the process
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.sshd_config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: _listening(self.address, 22), what=f"sshd on {self.address}")

    def stop_sshd(self) -> None:
        """Take the node off the network (fault injection): sshd and its sessions end."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)
        self.process = None
        subprocess.run(["pkill", "-f", f"sshd: .*{self.address}"], check=False)

    def drop_connections(self) -> None:
        """Kill the live SSH sessions of this node, keeping sshd listening (a connection reset)."""
        subprocess.run(["pkill", "-TERM", "-f", f"SANDBOX_NODE_NAME={self.name}\\b"], check=False)
        if self.process:
            children = subprocess.run(
                ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
            ).stdout.split()
            for pid in children:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def install_tools(self) -> None:
        self.bin.mkdir(parents=True, exist_ok=True)
        if not TOOLS_DIR.is_dir():
            return
        for kind_dir in sorted(p for p in TOOLS_DIR.iterdir() if p.is_dir() and not p.name.startswith("_")):
            for tool in sorted(kind_dir.iterdir()):
                if tool.name.startswith(("_", ".")) or tool.suffix not in (".py", ""):
                    continue
                target = self.bin / tool.stem
                text = tool.read_text()
                if text.startswith("#!"):
                    text = text.split("\n", 1)[1]
                target.write_text(f"#!{sys.executable}\n" + text)
                target.chmod(0o755)


@dataclass
class Sandbox:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    root: Path
    node_count: int = 3
    with_moto: bool = True
    with_smtp: bool = True
    nodes: list[SandboxNode] = field(default_factory=list)
    spare_nodes: dict[str, SandboxNode] = field(default_factory=dict)
    moto_url: str = ""
    smtp_port: int = 0
    mails: list = field(default_factory=list)
    _moto: subprocess.Popen | None = None
    _smtp: object | None = None
    host_key_line: str = ""
    client_key: Path | None = None
    _cleanups: list = field(default_factory=list)
    _octet: int = 0

    def add_cleanup(self, callback) -> None:
        """Run `callback()` when the sandbox stops (extra servers a kind started, ...)."""
        self._cleanups.append(callback)

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Sandbox:
        self.root.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation dir
        self._make_keys()
        octet = self._octet = pick_subnet(self.node_count)
        for i in range(self.node_count):
            self.nodes.append(self._make_node(f"node{i + 1}", f"127.0.{octet}.{11 + i}"))
        for node in self.nodes:
            node.install_tools()
            node.start_sshd()
        if self.with_moto:
            self._start_moto()
        if self.with_smtp:
            self._start_smtp()
        return self

    def stop(self) -> None:
        while self._cleanups:
            try:
                self._cleanups.pop()()
            except Exception as exc:  # keep stopping the rest
                print(f"sandbox: cleanup failed: {exc}", file=sys.stderr)
        for node in [*self.nodes, *self.spare_nodes.values()]:
            node.stop_sshd()
        if self._moto and self._moto.poll() is None:
            os.killpg(self._moto.pid, signal.SIGTERM)
            try:
                self._moto.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._moto.pid, signal.SIGKILL)
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- parts ---------------------------------------------------------------------------------
    def _make_keys(self) -> None:
        keys = self.root / "keys"
        keys.mkdir(exist_ok=True)
        for name in ("host_ed25519", "client_ed25519"):
            if not (keys / name).exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"sandbox-{name}", "-f", str(keys / name)],
                    check=True,
                )
        (keys / "host_ed25519").chmod(0o600)
        (keys / "client_ed25519").chmod(0o600)
        shutil.copy(keys / "client_ed25519.pub", keys / "authorized_keys")
        self.client_key = keys / "client_ed25519"
        self.host_key_line = " ".join((keys / "host_ed25519.pub").read_text().split()[:2])

    def _make_node(self, name: str, address: str) -> SandboxNode:
        root = self.root / name
        (root / "state").mkdir(parents=True, exist_ok=True)
        (root / "bin").mkdir(exist_ok=True)
        keys = self.root / "keys"
        config = root / "sshd_config"
        path = f"{root / 'bin'}:/usr/local/bin:/usr/bin:/bin"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {address}:22",
                    f"HostKey {keys / 'host_ed25519'}",
                    f"PidFile {root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {keys / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitUserEnvironment no",
                    "MaxStartups 100:30:200",
                    "MaxSessions 50",
                    "LogLevel ERROR",
                    f"SetEnv PATH={path} SANDBOX_NODE_ROOT={root} SANDBOX_NODE_NAME={name} SANDBOX_NODE_ADDRESS={address}",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        return SandboxNode(name=name, address=address, root=root, sshd_config=config)

    def spare_node(self, name: str) -> SandboxNode:
        """A node in no cluster, started at the first ask (only the tests that need one pay for its
        sshd): outside `nodes`, so no kind's `prepare` puts a cluster on it; the next address of the
        sandbox's loopback block."""
        if name not in self.spare_nodes:
            address = f"127.0.{self._octet}.{11 + len(self.nodes) + len(self.spare_nodes)}"
            if not _port_free(address, 22):
                raise RuntimeError(f"sandbox: port 22 of {address} is taken, no room for spare node {name!r}")
            node = self._make_node(name, address)
            node.install_tools()
            node.start_sshd()
            self.spare_nodes[name] = node
        return self.spare_nodes[name]

    @property
    def block_dir(self) -> Path:
        """Where the moto wrapper writes each instance's block devices (tests/sandbox/tools/block/)."""
        return Path(self.root) / "ec2-block-devices"

    def _start_moto(self) -> None:
        port = free_port()
        # moto_server plus EBS snapshots that tests can hold `pending` (see moto_server.py)
        moto_server = Path(__file__).with_name("moto_server.py")
        log = open(self.root / "moto.log", "ab")  # noqa: SIM115
        self._moto = subprocess.Popen(
            [sys.executable, str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "SANDBOX_BLOCK_DIR": str(self.block_dir)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.moto_url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"{self.moto_url}/moto-api/data.json", timeout=1):
                    return True
            except OSError:
                return False

        wait_until(up, timeout=30, what="moto server")

    def _start_smtp(self, port: int = 0) -> None:
        from aiosmtpd.controller import Controller

        mails = self.mails
        mail_dir = self.root / "mails"
        mail_dir.mkdir(exist_ok=True)

        class Recorder:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                import email

                message = email.message_from_bytes(envelope.content)
                record = {
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "subject": str(message.get("Subject", "")),
                    "body": _mail_text(message),
                }
                mails.append(record)
                (mail_dir / f"{len(mails):05d}.json").write_text(json.dumps(record))
                return "250 Message accepted for delivery"

        self.smtp_port = port or free_port()
        self._smtp = Controller(Recorder(), hostname="127.0.0.1", port=self.smtp_port)
        self._smtp.start()

    @contextmanager
    def smtp_stopped(self):
        """SMTP down (fault injection): nothing listens on the port; started again on it afterwards."""
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None
        try:
            yield
        finally:
            self._start_smtp(port=self.smtp_port)

    def reset_mails(self) -> None:
        self.mails.clear()

    # ---- what clients need ---------------------------------------------------------------------
    def connections(self) -> dict[str, str]:
        """AIRFLOW_CONN_* environment variables for the sandbox's parts."""
        env = {
            f"AIRFLOW_CONN_{SSH_CONN_ID.upper()}": json.dumps(
                {
                    "conn_type": "ssh",
                    "host": self.nodes[0].address if self.nodes else "127.0.0.1",
                    "login": os.environ.get("USER") or "root",
                    "port": 22,
                    "extra": {
                        "key_file": str(self.client_key),
                        "host_key": self.host_key_line,
                        "conn_timeout": "10",
                        "look_for_keys": "false",
                    },
                }
            )
        }
        if self.moto_url:
            env[f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}"] = json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"region_name": "us-east-1", "endpoint_url": self.moto_url},
                }
            )
        if self.smtp_port:
            env[f"AIRFLOW_CONN_{SMTP_CONN_ID.upper()}"] = json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": self.smtp_port,
                    "extra": {
                        "disable_tls": True,
                        "disable_ssl": True,
                        "from_email": "airflow-backup@sandbox.local",
                        "retry_limit": 1,
                        "timeout": 10,
                    },
                }
            )
        return env

    def boto3_client(self, service: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.moto_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def node(self, name_or_index: str | int) -> SandboxNode:
        if isinstance(name_or_index, int):
            return self.nodes[name_or_index]
        return next(n for n in [*self.nodes, *self.spare_nodes.values()] if name_or_index in (n.name, n.address))


def _mail_text(message) -> str:
    parts = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            if payload:
                parts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(parts)
