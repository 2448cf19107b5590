"""Where a bup restore and the S3 sync may write: the pure containment checks, the restore and sync
operators' refusals that need no sandbox, the clusters-file and DAG-form checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_backup_provider.operators.bup import BupError, BupRestoreOperator
from airflow_backup_provider.operators.s3_sync import S3SyncOperator
from airflow_backup_provider.stores.paths import (
    UnsafePathError,
    check_outside,
    check_within,
    find_overlap,
    is_inside,
    normal_path,
    parse_nul_list,
    realpath_argv,
)
from tests.unit.test_bup_config_and_dags import parse


@pytest.mark.parametrize(
    ("value", "normal"),
    [("/data", "/data"), ("/data/", "/data"), ("//data//x//", "/data/x"), ("/data/./x/.", "/data/x"), ("/", "/"),
     ("///", "/"), ("/a b/c\nd", "/a b/c\nd"), ("/data/...", "/data/..."), ("/data/..x", "/data/..x")],
)
def test_normal_path(value, normal):
    assert normal_path(value) == normal


@pytest.mark.parametrize(
    ("value", "why"),
    [("/tmp/../etc", "'..'"), ("/tmp/..", "'..'"), ("/a/./../b/", "'..'"), ("data", "absolute"), ("", "absolute"),
     ("/a\x00b", "NUL"), (None, "absolute")],
)
def test_normal_path_refuses(value, why):
    with pytest.raises(UnsafePathError, match=why) as err:
        normal_path(value, "target_dir")
    assert "target_dir" in str(err.value) and repr(value) in str(err.value)


@pytest.mark.parametrize(
    ("path", "base", "inside"),
    [
        ("/data", "/data", True),
        ("/data/", "/data", True),
        ("/data", "/data/", True),
        ("/data/x/y", "/data", True),
        ("/data//x", "/data/", True),
        ("/database", "/data", False),  # a prefix of the string, not of the path
        ("/data-old/x", "/data", False),
        ("/dat", "/data", False),
        ("/", "/data", False),
        ("/anything", "/", True),
        ("/data x/y", "/data x", True),
        ("/data x", "/data", False),
        ("/data\n/etc", "/data", False),  # a newline is a character of a name, not a separator
        ("/data\n/etc", "/data\n", True),
        ("/etc", "/data\n/etc", False),
        ("/data;rm -rf ~/x", "/data;rm -rf ~", True),
    ],
)
def test_is_inside(path, base, inside):
    assert is_inside(path, base) is inside


PROTECTED = [("paths, a backed-up path", "/srv/data/"), ("server.repo_dir, the repository", "/srv/bup/web1")]


def test_find_overlap_both_ways():
    assert find_overlap("/srv/database", PROTECTED) is None
    assert find_overlap("/srv/bup/web1x", PROTECTED) is None
    inside = find_overlap("/srv/bup/web1/refs/heads/web1", PROTECTED)
    assert inside.inside and inside.protected == "/srv/bup/web1" and "repository" in inside.label
    holds = find_overlap("/srv", PROTECTED)
    assert not holds.inside and holds.protected == "/srv/data"


def test_check_outside_names_field_value_and_protected_path():
    assert check_outside("target_dir", "/var/tmp/r/", PROTECTED) == "/var/tmp/r"
    with pytest.raises(UnsafePathError) as err:
        check_outside("target_dir", "/srv/data/restore", PROTECTED)
    assert str(err.value).startswith("target_dir: value '/srv/data/restore' is inside /srv/data (paths, a backed-up path)")
    # fine as given, but a symlink on the machine leads into the repository
    with pytest.raises(UnsafePathError) as err:
        check_outside("target_dir", "/var/tmp/link", PROTECTED, resolved="/srv/bup/web1/refs", where="web1")
    message = str(err.value)
    assert "'/var/tmp/link' on web1 (it resolves to /srv/bup/web1/refs) is inside /srv/bup/web1" in message
    assert check_outside("target_dir", "/var/tmp/link", PROTECTED, resolved="/mnt/elsewhere") == "/mnt/elsewhere"


def test_check_within():
    root = "/srv/bup/web1"
    assert check_within("local_dir", "/srv/bup/web1/", root, label="the repository folder") == root
    assert check_within("local_dir", "/srv/bup/web1/objects", root, label="r") == "/srv/bup/web1/objects"
    for outside in ("/srv/bup/web10", "/srv/bup", "/", "/etc"):
        with pytest.raises(UnsafePathError, match=f"local_dir: value '{outside}' is not /srv/bup/web1"):
            check_within("local_dir", outside, root, label="r")
    with pytest.raises(UnsafePathError, match=r"'\.\.'"):
        check_within("local_dir", "/srv/bup/web1/../../../etc", root, label="r")
    with pytest.raises(UnsafePathError, match="resolves to /etc"):
        check_within("local_dir", "/srv/bup/web1/x", root, label="r", resolved="/etc", resolved_root=root)


def test_realpath_argv_and_its_output():
    argv = realpath_argv(["/a b", "-rf", "/x\ny"])
    assert argv == ["realpath", "-m", "-z", "--", "/a b", "-rf", "/x\ny"]
    assert parse_nul_list("/a b\x00/x\ny\x00", 2) == ["/a b", "/x\ny"]
    with pytest.raises(ValueError, match="expected 3"):
        parse_nul_list("/a\x00/b\x00", 3)


# ---- the restore operator, before it connects anywhere ----------------------------------------


def restore_op(target: str, **kwargs) -> BupRestoreOperator:
    from airflow_backup_provider.stores.bup import Remote

    return BupRestoreOperator(
        task_id="r", branch="web1", path="/etc", save="latest", target_dir=target, host="h", bup_dir="/var/cache/bup/web1",
        remote=Remote(host="backup", path="/srv/bup/web1"), server={"host": "backup", "bup_dir": "/srv/bup/web1"},
        protected_paths=[("paths, a backed-up path", "/etc"), ("staging_dir", "/var/backups/staging")],
        ssh_conn_id="never-used", **kwargs,
    )


@pytest.mark.parametrize(
    ("target", "protected"),
    [
        ("/etc/restore", "/etc"),
        ("/etc/", "/etc"),
        ("/var/backups/staging/x", "/var/backups/staging"),
        ("/var/cache/bup/web1/index-cache", "/var/cache/bup/web1"),
        ("/srv/bup/web1/refs/heads", "/srv/bup/web1"),
        ("/srv", "/srv/bup/web1"),  # a folder holding the repository
    ],
)
@pytest.mark.parametrize("where", ["host", "server"])
def test_restore_refuses_live_targets_before_connecting(target, protected, where):
    op = restore_op(target, where=where)
    with pytest.raises(BupError) as err:  # ssh_conn_id 'never-used' does not exist: no connection was tried
        op.execute({"params": {"dry_run": False}, "run_id": "manual__x"})
    message = str(err.value)
    assert message.startswith(f"param 'target_dir': value {target!r}") and protected in message
    assert "nothing was written" in message


def test_restore_target_next_to_live_data_is_not_refused_by_name():
    op = restore_op("/etc-restore")
    protected = op.protected()
    assert op._check_target(None, protected) == "/etc-restore"
    assert ("server.repo_dir, the repository", "/srv/bup/web1") in protected
    assert ("bup_dir", "/var/cache/bup/web1") in protected


# ---- the S3 sync operator's local_dir ------------------------------------------------------------


def sync_op(local_dir: str, direction: str, repo: Path, live: Path) -> S3SyncOperator:
    return S3SyncOperator(
        task_id="s", local_dir=local_dir, bucket="b", prefix="bup/web1", direction=direction,
        upload_root=str(repo), protected_paths=[("server.repo_dir, the repository", str(repo)), ("paths", str(live))],
        aws_conn_id="never-used",
    )


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    repo, live = tmp_path / "bup" / "web1", tmp_path / "data"
    (repo / "objects").mkdir(parents=True)
    live.mkdir()
    (live / "db").write_text("live")
    return repo, live


def test_upload_only_from_the_repository(folders, tmp_path):
    repo, live = folders
    assert sync_op(f"{repo}/", "upload", *folders).checked_local_dir() == str(repo)
    assert sync_op(f"{repo}/objects", "upload", *folders).checked_local_dir() == str(repo / "objects")
    for bad, why in (
        ("/tmp/../etc", "must not contain '..'"),
        (f"{repo}/../../data", "must not contain '..'"),
        ("/", "root folder"),
        ("//", "root folder"),
        ("/etc", "is not"),
        (f"{repo}0", "is not"),
        (str(tmp_path), "is not"),
    ):
        with pytest.raises(ValueError, match=why) as err:
            sync_op(bad, "upload", *folders).checked_local_dir()
        assert str(err.value).startswith(f"local_dir: value {bad!r}")
    (repo / "escape").symlink_to("/etc")
    with pytest.raises(ValueError, match="resolves to /etc"):
        sync_op(f"{repo}/escape", "upload", *folders).checked_local_dir()


def test_download_only_into_an_empty_or_new_folder_outside_live_data(folders, tmp_path):
    repo, live = folders
    assert sync_op(str(tmp_path / "new"), "download", *folders).checked_local_dir() == str(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    assert sync_op(str(tmp_path / "empty"), "download", *folders).checked_local_dir() == str(tmp_path / "empty")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    (tmp_path / "into-live").symlink_to(live)
    for bad, why in (
        (str(repo), "is inside"),
        (str(repo / "restored"), "is inside"),
        (str(live / "new"), "is inside"),
        (str(tmp_path / "into-live" / "new"), "resolves to"),
        (str(tmp_path), "holds"),
        (str(tmp_path / "busy"), "is not empty"),
        (str(live / "db"), "is inside"),
        ("/tmp/../etc", "'..'"),
        ("/", "root folder"),
    ):
        with pytest.raises(ValueError, match=why) as err:
            sync_op(bad, "download", *folders).checked_local_dir()
        assert str(err.value).startswith(f"local_dir: value {bad!r}")
    assert os.listdir(tmp_path / "busy") == ["x"]


# ---- where the values come in: the clusters file and the DAG forms ------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"server": {"host": "backup.internal", "repo_dir": "/"}}, "server.repo_dir"),
        ({"server": {"host": "backup.internal", "repo_dir": "/srv/../etc"}}, "server.repo_dir"),
        ({"bup_dir": "//"}, "bup_dir"),
        ({"staging_dir": "/"}, "staging_dir"),
    ],
)
def test_clusters_file_refuses_root_and_dotdot_folders(overrides, field):
    entries, errors = parse(**overrides)
    value = overrides["server"]["repo_dir"] if "server" in overrides else overrides[field]
    assert entries == [] and len(errors) == 1
    assert f"field '{field}': value {value!r}" in errors[0]


def form_params():
    from airflow_backup_provider.factory import build_entry

    dags = {d.dag_id: d for d in build_entry(parse()[0][0])}
    return dags["bup_web1_restore"].params, dags["bup_web1_s3_sync"].params


@pytest.mark.parametrize("value", ["/tmp/../etc", "/srv/bup/web1/..", "/a/../../b/"])
def test_forms_refuse_dotdot(value):
    from airflow.sdk.definitions.param import ParamValidationError

    restore, sync = form_params()
    for params, name in ((restore, "target_dir"), (restore, "path"), (sync, "local_dir")):
        with pytest.raises(ParamValidationError, match="does not match"):
            params.get_param(name).resolve(value)


def test_forms_accept_ordinary_folders():
    restore, sync = form_params()
    for value in ("/var/tmp/restore-1/...x", "", "/data/..x/y"):
        assert restore.get_param("target_dir").resolve(value) == value
    assert restore.get_param("path").resolve("/var/www/my site") == "/var/www/my site"
    assert sync.get_param("local_dir").resolve("/srv/bup/web1-new/") == "/srv/bup/web1-new/"
