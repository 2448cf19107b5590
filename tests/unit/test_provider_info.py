"""The provider's metadata lists exactly the modules that exist, and Airflow sees the provider."""

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import airflow_backup_provider
from airflow_backup_provider import get_provider_info

PACKAGE_DIR = Path(airflow_backup_provider.__file__).parent


def modules_in(folder: str) -> set[str]:
    return {
        f"airflow_backup_provider.{folder}.{m.name}"
        for m in pkgutil.iter_modules([str(PACKAGE_DIR / folder)])
        if not m.name.startswith("_")
    }


def listed(section: str) -> set[str]:
    return {m for block in get_provider_info().get(section, []) for m in block["python-modules"]}


@pytest.mark.parametrize("section", ["hooks", "operators", "sensors", "triggers"])
def test_every_module_is_listed_and_every_listed_module_imports(section):
    assert listed(section) == modules_in(section)
    for module in listed(section):
        importlib.import_module(module)


def test_notifications_import():
    for path in get_provider_info()["notifications"]:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name)


def test_entry_point_and_package_name():
    (ep,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_backup_provider")]
    assert ep.load()()["package-name"] == "airflow-backup-provider"


def test_airflow_cli_shows_the_provider():
    airflow = Path(sys.executable).with_name("airflow")
    env = os.environ.copy()
    listing = subprocess.run(
        [str(airflow), "providers", "list", "-o", "json"], capture_output=True, text=True, env=env, check=True
    )
    names = [p["package_name"] for p in json.loads(listing.stdout)]
    assert "airflow-backup-provider" in names
    got = subprocess.run(
        [str(airflow), "providers", "get", "airflow-backup-provider", "-o", "json"],
        capture_output=True, text=True, env=env, check=True,
    )
    assert "airflow-backup-provider" in got.stdout
