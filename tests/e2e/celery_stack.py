"""The deployment of docker-compose.yaml as processes: PostgreSQL, Redis, and Airflow with the
CeleryExecutor (api-server, scheduler, dag-processor, triggerer, two Celery workers).

Every part runs in its own process group on a loopback port picked free, in one temporary folder;
:meth:`CeleryStack.stop` ends every group and checks that none is left. The Airflow settings the
deployment shares come from ``airflow.env`` (docker-compose.yaml reads the same file); this module
adds only what differs here: addresses, a private home, test speed.

Used by the end-to-end tests (a package fixture, tests/e2e/deployment/conftest.py) and by ``scripts/stack.sh``
(``python -m tests.e2e.celery_stack``: the stack with the sandbox and the example clusters file,
until Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from tests.harness import REPO
from tests.sandbox.core import free_port, wait_until

SETTINGS_FILE = REPO / "airflow.env"
WORKERS = ("w1", "w2")
AIRFLOW_PARTS = ("scheduler", "dag-processor", "triggerer")  # `airflow <part>`, no options
WORKER_HOSTNAME_ENV = "ABP_WORKER_HOSTNAME"
POSTGRES_USER = "airflow"

PRELOAD_PLUGIN = """
# Test speed only (see CeleryStack._prepare_home): imported by each Celery worker before it forks its pool.
import botocore.loaders

import airflow_backup_provider.factory  # noqa: F401
import airflow_backup_provider.builders.ebs  # noqa: F401
import airflow_backup_provider.builders.riak  # noqa: F401

# botocore caches a loaded service model per session; share it per process instead, and load
# EC2's here so that every forked task process starts with it (botocore treats it as read-only).
_models = {}
_load = botocore.loaders.Loader.load_service_model


def _shared_load_service_model(self, service_name, type_name, api_version=None):
    key = (service_name, type_name, api_version)
    if key not in _models:
        _models[key] = _load(self, service_name, type_name, api_version)
    return _models[key]


botocore.loaders.Loader.load_service_model = _shared_load_service_model

# One client here warms what every later one reuses in this process and its forks: botocore's
# operation-name cache and the source lines the amazon provider inspects for its user agent.
try:
    from airflow_backup_provider.hooks.ebs import EbsHook

    EbsHook(aws_conn_id="aws_default").conn
except Exception:  # a CLI process without the connection: nothing to warm
    pass
"""


def shared_settings(path: Path = SETTINGS_FILE) -> dict[str, str]:
    """The KEY=VALUE lines of airflow.env (the docker env_file format: no quotes, no expansion)."""
    settings = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def worker_hostname() -> str:
    """[core] hostname_callable of the workers: both run on this one machine, and each task
    instance records which of them ran it (docker-compose gives each container its own name)."""
    return os.environ.get(WORKER_HOSTNAME_ENV) or __import__("socket").getfqdn()


def postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed (bash scripts/install.sh installs it)")
    return versions[-1].parent


def _as_unprivileged() -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user Debian's package made."""
    if os.geteuid() != 0:
        return []
    user = "postgres"
    try:
        pwd.getpwnam(user)
    except KeyError:
        user = "nobody"
    return ["runuser", "-u", user, "--"]


def _owner_for_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        runner = _as_unprivileged()[2]
        entry = pwd.getpwnam(runner)
        os.chown(path, entry.pw_uid, entry.pw_gid)


class CeleryStack:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, sandbox, clusters: dict, *, root: Path | None = None, api_host: str = "127.0.0.1",
                 api_port: int | None = None, extra_env: dict[str, str] | None = None, concurrency: int = 4):
        # not under pytest's tmp_path (mode 0700, root's): the postgres user must reach its folder
        self.root = Path(root or tempfile.mkdtemp(prefix="abp-stack-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.sandbox = sandbox
        self.home = self.root / "airflow-home"
        self.logs = self.root / "logs"
        self.concurrency = concurrency
        self.processes: dict[str, subprocess.Popen] = {}
        self.pg_port, self.redis_port = free_port(), free_port()
        self.api_host, self.api_port = api_host, api_port or free_port()
        self.db_url = f"postgresql+psycopg2://{POSTGRES_USER}@127.0.0.1:{self.pg_port}/airflow"
        self.clusters_path = self.home / "clusters.yaml"
        self.password = os.urandom(9).hex()
        self._prepare_home(clusters)
        self.env = self._environment(extra_env or {})

    # ---- configuration -------------------------------------------------------------------------
    def _prepare_home(self, clusters: dict) -> None:
        dags = self.home / "dags"
        dags.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        shutil.copy(REPO / "dags" / "backup_dags.py", dags / "backup_dags.py")
        self.clusters_path.write_text(yaml.safe_dump(clusters, sort_keys=False))
        # the provider, boto3 and EC2's service model imported once in each worker before it forks
        # its pool (test speed only)
        (self.home / "plugins").mkdir(exist_ok=True)
        (self.home / "plugins" / "preload_backup_provider.py").write_text(PRELOAD_PLUGIN)
        (self.home / "passwords.json").write_text(json.dumps({"admin": self.password}))

    def _environment(self, extra: dict[str, str]) -> dict[str, str]:
        api = f"http://127.0.0.1:{self.api_port}"
        return {
            **os.environ,
            **self.sandbox.connections(),
            **shared_settings(),
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO),
            "AIRFLOW_HOME": str(self.home),
            "BACKUP_CLUSTERS_FILE": str(self.clusters_path),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.db_url.replace("+psycopg2", ""),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__API__HOST": self.api_host,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(32).hex(),
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.home / "plugins"),
            "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            **extra,
        }

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> CeleryStack:
        try:
            self._start_postgres()
            self._start_redis()
            self.airflow("db", "migrate", timeout=600)
            self._spawn("api-server", ["airflow", "api-server", "--port", str(self.api_port)])
            self.wait_for(self._api_up, 180, "the api-server")
            for part in AIRFLOW_PARTS:
                self.start_part(part)
            for worker in WORKERS:
                self.start_worker(worker)
            for worker in WORKERS:
                self.wait_for(lambda w=worker: self._worker_ready(w), 180, f"celery worker {worker}")
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> CeleryStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, user: list[str] | None = None):
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the process
        self.processes[name] = subprocess.Popen(
            [*(user or []), *argv], env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        return self.processes[name]

    def _start_postgres(self) -> None:
        binaries, as_user = postgres_bin(), _as_unprivileged()
        data, sockets = self.root / "pgdata", self.root / "pgsocket"
        for folder in (data, sockets):
            folder.mkdir()
            _owner_for_postgres(folder)
        done = subprocess.run(
            [*as_user, str(binaries / "initdb"), "-D", str(data), "-U", POSTGRES_USER, "-A", "trust", "-E", "UTF8",
             "--no-sync"],
            capture_output=True, text=True, cwd=self.root, check=False,
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stdout}{done.stderr}")
        self._spawn(
            "postgres",
            [str(binaries / "postgres"), "-D", str(data), "-k", str(sockets), "-p", str(self.pg_port),
             "-h", "127.0.0.1", "-c", "max_connections=300", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off"],
            env={**os.environ, "LC_ALL": "C.UTF-8"}, user=as_user,
        )
        ready = [str(binaries / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", POSTGRES_USER]
        self.wait_for(lambda: subprocess.run(ready, check=False).returncode == 0, 60, "postgres")
        subprocess.run([str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", POSTGRES_USER,
                        "airflow"], check=True, capture_output=True)

    def _start_redis(self) -> None:
        self._spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--daemonize", "no"])
        self.wait_for(
            lambda: subprocess.run(["redis-cli", "-p", str(self.redis_port), "ping"], capture_output=True, text=True,
                                   check=False).stdout.strip() == "PONG",
            30, "redis",
        )

    def start_part(self, part: str) -> None:
        """Start the scheduler, the dag-processor or the triggerer (again, after stop_part or kill)."""
        if part not in AIRFLOW_PARTS:
            raise ValueError(f"part: {part!r} is not one of {AIRFLOW_PARTS} (workers: start_worker)")
        self._spawn(part, ["airflow", part])

    def start_worker(self, worker: str) -> None:
        (self.logs / f"{worker}.log").unlink(missing_ok=True)  # `ready` below reads this start's log
        env = {**self.env, WORKER_HOSTNAME_ENV: worker,
               "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.e2e.celery_stack.worker_hostname"}
        # --skip-serve-logs: both workers share this machine (one log port) and its log folder,
        # which the api-server reads directly
        self._spawn(worker, ["airflow", "celery", "worker", "--concurrency", str(self.concurrency),
                             "--celery-hostname", f"{worker}@%h", "--skip-serve-logs", "--without-gossip",
                             "--without-mingle"], env=env)

    def _worker_ready(self, worker: str) -> bool:
        process = self.processes[worker]
        if process.poll() is not None:
            raise AssertionError(f"celery worker {worker} exited with {process.returncode}:\n{self.log_tail(worker)}")
        return " ready." in (self.logs / f"{worker}.log").read_text(errors="replace")

    def wait_worker_ready(self, worker: str, timeout: float = 180) -> None:
        self.wait_for(lambda: self._worker_ready(worker), timeout, f"celery worker {worker}")

    def kill(self, name: str) -> None:
        """SIGKILL a part and everything in its process group (a machine lost, in effect)."""
        process = self.processes[name]
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(30)
        self.wait_for(lambda: not _group_alive(process.pid), 30, f"{name}'s process group gone")

    def stop_part(self, name: str) -> None:
        self._stop_together([name])

    def stop(self) -> None:
        """Every part: Airflow's together (workers warm-shut down, the rest follow within
        seconds), then Redis and PostgreSQL; raises when a process group is left."""
        groups = {name: p.pid for name, p in self.processes.items()}
        airflow_parts = [name for name in self.processes if name not in ("redis", "postgres")]
        self._stop_together(airflow_parts)
        self._stop_together(["redis", "postgres"])
        left = {name: pid for name, pid in groups.items() if _group_alive(pid)}
        if left:
            raise AssertionError(f"stack processes left running: {left}")

    def _stop_together(self, names: list[str], timeout: float = 20) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [name for name in names if name in self.processes and _group_alive(self.processes[name].pid)]
            for name in alive:
                try:
                    os.killpg(self.processes[name].pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(_group_alive(self.processes[n].pid) for n in alive):
                time.sleep(0.2)
        for name in names:
            process = self.processes.pop(name, None)
            if process is not None:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    pass

    # ---- use -----------------------------------------------------------------------------------
    def airflow(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(["airflow", *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def query(self, sql: str, *params) -> list[tuple]:
        import psycopg2

        with psycopg2.connect(host="127.0.0.1", port=self.pg_port, user=POSTGRES_USER, dbname="airflow") as conn:
            with conn.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall() if cursor.description else []
        conn.close()
        return rows

    def _api_up(self) -> bool:
        process = self.processes["api-server"]
        if process.poll() is not None:
            raise AssertionError(f"the api-server exited with {process.returncode}:\n{self.log_tail('api-server')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=2):
                return True
        except OSError:
            return False

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def wait_for(self, predicate, timeout: float, what: str):
        """`wait_until`, failing with the tail of every process's log."""
        try:
            return wait_until(predicate, timeout, what, interval=0.5)
        except TimeoutError:
            tails = "\n".join(f"--- {name} ---\n{self.log_tail(name, 1500)}" for name in self.processes)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tails}") from None

    def wait_parsed(self, *dag_ids: str, timeout: float = 180) -> None:
        self.wait_for(
            lambda: len(self.query("select dag_id from serialized_dag where dag_id = any(%s)", list(dag_ids)))
            == len(set(dag_ids)),
            timeout, f"{dag_ids} parsed",
        )

    def wait_run_ended(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        return self.wait_for(
            lambda: next(iter(r[0] for r in self.query(
                "select state from dag_run where dag_id = %s and run_id = %s and state in ('success', 'failed')",
                dag_id, run_id)), None),
            timeout, f"{dag_id} {run_id} ended",
        )

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return dict(self.query("select task_id, state from task_instance where dag_id = %s and run_id = %s",
                               dag_id, run_id))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a group of zombies only (reaped by Popen.wait) is gone; ps tells the living from them
    states = subprocess.run(["ps", "-o", "stat=", "-s", str(pgid)], capture_output=True, text=True,
                            check=False).stdout.split()
    return any(not s.startswith("Z") for s in states)


# ---- scripts/stack.sh ---------------------------------------------------------------------------


def _adapted_clusters(sandbox, clusters_file: Path) -> dict:
    """The example clusters file with each entry put on the sandbox by its kind (as the demo does)."""
    example = yaml.safe_load(clusters_file.read_text())
    entries = []
    for entry in example.get("entries") or []:
        kind_module = importlib.import_module(f"tests.sandbox.kinds.{entry['kind']}")
        entries.append(kind_module.prepare(sandbox, dict(entry)))
    return {**example, "entries": entries}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The CeleryExecutor stack with the sandbox, until Ctrl-C.")
    parser.add_argument("--clusters", default=str(REPO / "dags" / "clusters.yaml"))
    parser.add_argument("--host", default=os.environ.get("STACK_HOST", "127.0.0.1"),
                        help="address the UI listens on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("STACK_PORT", "0")) or None,
                        help="the UI's port (default: 8080 if free, else any free port)")
    args = parser.parse_args(argv)

    from tests.sandbox import Sandbox
    from tests.sandbox.core import _port_free

    port = args.port or (8080 if _port_free(args.host, 8080) else free_port())
    work = Path(tempfile.mkdtemp(prefix="abp-stack-"))
    work.chmod(0o755)  # the postgres user reaches its folder inside
    stopping = []

    def interrupt(signum, frame):  # SIGTERM as Ctrl-C: stop everything the same way
        if not stopping:
            stopping.append(signum)
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    print(f"stack: starting the sandbox and the stack in {work} ...", flush=True)
    sandbox = Sandbox(work / "sandbox", node_count=3)
    stack = None
    try:
        sandbox.start()
        clusters = _adapted_clusters(sandbox, Path(args.clusters))
        stack = CeleryStack(sandbox, clusters, root=work / "stack", api_host=args.host, api_port=port)
        stack.start()
        dag_ids = [r[0] for r in stack.wait_for(lambda: stack.query("select dag_id from dag order by dag_id"), 300,
                                                "the DAGs parsed")]
        shown = "localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host
        print(f"""
stack: up. Open http://{shown}:{port}/ and log in as  admin / {stack.password}
  DAGs ({len(dag_ids)}, paused at creation: switch one on, then trigger it from its form): {", ".join(dag_ids)}
  CeleryExecutor on PostgreSQL :{stack.pg_port} and Redis :{stack.redis_port}; workers {", ".join(WORKERS)}
  sandbox: nodes {", ".join(n.address for n in sandbox.nodes)}, moto {sandbox.moto_url}, SMTP :{sandbox.smtp_port}
  mails received are written to {sandbox.root / "mails"}; Airflow logs: {stack.logs}
  A worker that dies (kill it to try) is started again, like docker-compose's `restart: always`.
stack: Ctrl-C stops everything.""", flush=True)
        while True:
            time.sleep(5)
            for name, process in list(stack.processes.items()):
                if process.poll() is None:
                    continue
                if name in WORKERS:
                    print(f"stack: worker {name} exited ({process.returncode}); starting it again", flush=True)
                    stack.start_worker(name)
                else:
                    print(f"stack: {name} exited ({process.returncode}); see {stack.logs / (name + '.log')}",
                          flush=True)
                    return 1
    except KeyboardInterrupt:
        print("\nstack: stopping ...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        try:
            if stack is not None:
                stack.stop()
        finally:
            sandbox.stop()
            shutil.rmtree(work, ignore_errors=True)
            print("stack: stopped, nothing left running.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
