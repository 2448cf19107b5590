"""A real `airflow api-server` with the backup catalog plugin, for the catalog's end-to-end tests:
simple auth manager users with passwords, a JWT secret, the plugin found through its
`airflow.plugins` entry point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path

from airflow_backup_provider import PLUGIN_ENTRY_POINT
from tests.harness import REPO
from tests.sandbox.core import free_port, wait_until

PASSWORD = "catalog-test-password"


def require_plugin_entry_point() -> None:
    """Airflow finds the catalog through the installed package's `airflow.plugins` entry point:
    a venv installed before it existed must be installed again (scripts/install.sh)."""
    if not any(ep.name == PLUGIN_ENTRY_POINT for ep in entry_points(group="airflow.plugins")):
        raise AssertionError(f"the {PLUGIN_ENTRY_POINT!r} entry point is not installed: run bash scripts/install.sh")


class CatalogServer:
    def __init__(self, base_url: str, process: subprocess.Popen, log: Path):
        self.base_url = base_url
        self.process = process
        self.log = log

    def token(self, username: str, password: str = PASSWORD) -> str:
        request = urllib.request.Request(
            f"{self.base_url}/auth/token",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())["access_token"]

    def get(self, path: str, token: str | None = None) -> tuple[int, str, str]:
        """(status, content type, body) of a GET, errors included."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(f"{self.base_url}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type", ""), error.read().decode()

    def json(self, path: str, token: str) -> dict:
        code, _, body = self.get(path, token)
        assert code == 200, (code, body)
        return json.loads(body)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def catalog_api_server(home: Path, users: dict[str, str], extra_env: dict[str, str] | None = None) -> Iterator[CatalogServer]:
    """`airflow api-server` on a free port with `users` (name -> simple auth manager role), all with
    PASSWORD, in its own process group; the environment is this process's (its DB included)."""
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(dict.fromkeys(users, PASSWORD)))
    port = free_port()
    require_plugin_entry_point()
    env = {
        **os.environ,
        **(extra_env or {}),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": os.environ.get("AIRFLOW__API_AUTH__JWT_SECRET") or os.urandom(32).hex(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:{role}" for name, role in users.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    for key in ("AIRFLOW__BACKUP_CATALOG__METRICS_PUBLIC",):
        if key in (extra_env or {}):
            env[key] = extra_env[key]
    log = home / "api-server.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            ["airflow", "api-server", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = CatalogServer(f"http://127.0.0.1:{port}", process, log)

    def answers() -> bool:
        assert process.poll() is None, f"api-server exited:\n{server.log_tail()}"
        try:
            return server.get("/api/v2/monitor/health")[0] == 200
        except OSError:
            return False

    try:
        try:
            wait_until(answers, 180, "the api-server answering", interval=0.5)
        except TimeoutError:
            raise AssertionError(f"api-server did not answer:\n{server.log_tail()}") from None
        yield server
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=15)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
