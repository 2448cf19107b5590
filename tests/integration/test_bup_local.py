"""bup with `ssh_conn_id: local`: the commands run on the worker itself (no sandbox needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow_backup_provider.operators.bup import BupDumpOperator, BupRestoreOperator, BupSaveOperator
from airflow_backup_provider.stores.bup import Remote


class _Ti:
    def __init__(self):
        self.pushed = []

    def xcom_push(self, key, value):
        self.pushed.append((key, value))


def context(when: datetime, **params) -> dict:
    return {"params": {"dry_run": False, **params}, "logical_date": when, "ti": _Ti()}


def test_local_dump_save_restore(tmp_path):
    data, staging = tmp_path / "data", tmp_path / "staging"
    data.mkdir()
    (data / "notes.txt").write_text("local worker backup\n")
    common = {"host": "localhost", "ssh_conn_id": "local", "bup_dir": str(tmp_path / "bup")}
    # `-r :PATH` (no host): bup talks to a local `bup server`, the same protocol as over SSH
    remote = Remote(host="", path=str(tmp_path / "repo"))
    dumps = BupDumpOperator(
        task_id="dumps", staging_dir=str(staging),
        dumps=[{"name": "echo", "argv": ["echo", "dumped"], "output": "echo.txt"}], **common,
    )
    assert dumps.execute(context(datetime(2026, 11, 20, tzinfo=UTC)))[0]["size"] == len("dumped\n")
    save = BupSaveOperator(
        task_id="save", branch="local1", paths=[str(data), str(staging)], remote=remote, **common
    )
    when = datetime(2026, 11, 20, tzinfo=UTC)
    first = save.execute(context(when))
    assert first["save"] == "2026-11-20-000000" and not first["skipped"]
    assert first["data_bytes"] >= len("local worker backup\n") + len("dumped\n")
    assert save.execute(context(when))["skipped"] is True  # the same logical date saves once
    out = tmp_path / "out"
    restore = BupRestoreOperator(
        task_id="restore", branch="local1", path=str(staging), save="2026-11-20", target_dir=str(out),
        remote=remote, **common,
    )
    assert restore.execute(context(when))["save"] == "2026-11-20-000000"
    assert (out / "staging" / "echo.txt").read_text() == "dumped\n"
    # no target given: a new folder per run under default_target_root
    auto = BupRestoreOperator(
        task_id="restore", branch="local1", path=str(staging), save="latest", target_dir="",
        remote=remote, default_target_root=str(tmp_path / "auto"), **common,
    )
    auto.execute({**context(when), "run_id": "manual__2026-11-22T08:00:00+00:00"})
    restored = tmp_path / "auto" / "local1" / "manual__2026-11-22T08_00_00_00_00" / "staging" / "echo.txt"
    assert restored.read_text() == "dumped\n"
