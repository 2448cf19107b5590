"""The drills' pure parts: the scratch folder's name, the restored folder's checks, the verdict record."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow_backup_provider import names
from airflow_backup_provider.stores import drill as store


def test_the_scratch_folder_is_the_runs_own_under_the_drill_folder():
    folder = store.scratch_folder("/tmp/drills/", "cassandra_c_drill", "manual__2026-11-20T00:00:00+00:00")
    assert folder == "/tmp/drills/cassandra_c_drill/manual__2026-11-20T00_00_00+00_00"
    hostile = store.scratch_folder("/tmp/drills", "x", "../../etc/passwd")
    assert hostile.startswith("/tmp/drills/x/") and "/../" not in hostile and hostile.count("/") == 4
    with pytest.raises(names.InvalidName, match="drill_folder"):
        store.scratch_folder("/", "x", "run")
    with pytest.raises(names.InvalidName, match="drill_folder"):
        store.scratch_folder("relative/path", "x", "run")


def test_find_output_is_parsed_with_names_holding_spaces_and_newlines():
    found = store.parse_find("d drwxr-xr-x 4096 shop\0f -rw-r--r-- 12 shop/a b\nc.db\0")
    assert found == [
        store.TreeEntry("d", 4096, "shop", "drwxr-xr-x"),
        store.TreeEntry("f", 12, "shop/a b\nc.db", "-rw-r--r--"),
    ]
    assert store.find_argv("/s")[-1] == "%y %M %s %P\\0"


def tree(*entries):
    return [store.TreeEntry(kind, size, path, "") for kind, size, path in entries]


def test_the_restored_layout_must_be_exactly_what_the_restore_makes():
    files = {"ks/t-1/nb-1-big-Data.db": 10, "ks/t-1/.idx/nb-1-big-Data.db": 5}
    folders = store.folders_of(files, ["ks/t-1", "ks/empty-2"])
    assert folders == {"ks", "ks/t-1", "ks/t-1/.idx", "ks/empty-2"}
    good = tree(("d", 0, "ks"), ("d", 0, "ks/t-1"), ("d", 0, "ks/t-1/.idx"), ("d", 0, "ks/empty-2"),
                ("f", 10, "ks/t-1/nb-1-big-Data.db"), ("f", 5, "ks/t-1/.idx/nb-1-big-Data.db"))
    assert store.compare_tree(good, files, folders) == []
    bad = [t for t in good if t.path not in ("ks/empty-2", "ks/t-1/.idx/nb-1-big-Data.db")]
    bad += tree(("f", 3, "ks/t-1/.nb-1-big-Data.db.part"), ("d", 0, "ks/t-1/snapshots"), ("l", 4, "ks/link"))
    bad = [store.TreeEntry("f", 11, t.path) if t.path == "ks/t-1/nb-1-big-Data.db" else t for t in bad]
    problems = store.compare_tree(bad, files, folders)
    assert problems == [
        "ks/link: is not a plain file or folder (type l)",
        "ks/t-1/.idx/nb-1-big-Data.db: missing from the restored folder",
        "ks/t-1/nb-1-big-Data.db: 11 bytes on disk, the manifest says 10",
        "ks/t-1/.nb-1-big-Data.db.part: a file the backup does not list",
        "ks/t-1/snapshots/: a folder the restore would not make",
        "ks/empty-2/: a folder the restore makes is missing",
    ]


def test_a_restored_save_is_compared_by_type_mode_and_size():
    saved = [
        store.SavedEntry("etc", "dir", "drwxr-xr-x", 0, "a" * 40),
        store.SavedEntry("etc/key", "file", "-rw-------", 2, "b" * 40),
        store.SavedEntry("etc/link", "symlink", "lrwxrwxrwx", 3, "c" * 40),
        store.SavedEntry("tmp", "dir", "drwxrwxrwx", 0, "d" * 40),  # bup ls shows 1777 so
    ]
    found = [
        store.TreeEntry("d", 4096, "etc", "drwxr-xr-x"),
        store.TreeEntry("f", 2, "etc/key", "-rw-------"),
        store.TreeEntry("l", 3, "etc/link", "lrwxrwxrwx"),
        store.TreeEntry("d", 4096, "tmp", "drwxrwxrwt"),
    ]
    assert store.compare_save(saved, found) == []
    changed = [
        store.TreeEntry("d", 4096, "etc", "drwxr-xr-x"),
        store.TreeEntry("f", 2, "etc/key", "-rw-r--r--"),
        store.TreeEntry("f", 3, "etc/link", "-rw-r--r--"),
        store.TreeEntry("f", 1, "etc/extra", "-rw-r--r--"),
    ]
    assert store.compare_save(saved, changed) == [
        "etc/key: restored with mode -rw-r--r--, the save has -rw-------",
        "etc/link: restored as type f, the save has a symlink",
        "tmp: in the save, missing from the restored folder",
        "etc/extra: restored but not in the save",
    ]


def test_a_listing_is_checked_against_its_manifest():
    assert store.compare_listing({"p/a": 1, "p/b": 2}, {"p/a": 1, "p/b": 2}) == []
    assert store.compare_listing({"p/a": 1, "p/b": 2}, {"p/a": 3, "p/c": 1}) == [
        "p/a: 3 bytes in the bucket, the manifest says 1",
        "p/b: missing from the bucket",
        "p/c: in the bucket but not in the manifest",
    ]


def test_the_verdict_record_and_the_reports_produced_item():
    when = datetime(2026, 11, 21, tzinfo=UTC)
    many = [f"k{i}: missing from the bucket" for i in range(150)]
    record = store.build_record(dag_id="d_drill", run_id="r", backup="m.json", manifest_key="m.json",
                                checked_at=when, files=3, size=10, problems=many, what="size")
    assert record["verdict"] == "failed" and record["problem_count"] == 150 and len(record["problems"]) == 100
    assert store.record_key("a/manifest.json") == "a/manifest.json.drill.json"
    assert store.produced_entry("m.json", 10, []) == {"id": "m.json", "size": 10, "verified": True, "verdict": "passed"}
    assert store.produced_entry("m.json", 10, ["x"])["verdict"] == "failed"
    assert store.named(many).endswith("; and 145 more") and store.named(many).startswith("k0: missing")


def test_the_scratch_hook_writes_and_removes_only_inside_its_folder(tmp_path):
    from airflow_backup_provider.hooks.drill import ScratchHook

    drills = tmp_path / "drills"
    other = tmp_path / "live"
    other.mkdir()
    (other / "keep").write_text("live data")
    hook = ScratchHook(ssh_conn_id="local", scratch=store.scratch_folder(str(drills), "d_drill", "run 1"))
    for outside in (str(other / "keep"), hook.scratch + "/../../live/keep", str(drills / "d_drill")):
        with pytest.raises(ValueError, match="outside the drill's scratch folder"):
            hook.inside(outside)
    hook.makedirs(hook.scratch + "/a/b")
    with hook.open_for_write(hook.scratch + "/a/b/f") as handle:
        handle.write(b"x" * 3)
    assert [(t.kind, t.size, t.path) for t in hook.list_tree() if t.kind == "f"] == [("f", 3, "a/b/f")]
    assert hook.remove_scratch() is True
    assert not drills.joinpath("d_drill").exists() and drills.exists()  # its run folder and the empty dag folder
    assert hook.remove_scratch() is False
    assert (other / "keep").read_text() == "live data"


def test_listening_ports_read_from_ss_output():
    output = (
        "LISTEN 0      128     127.0.92.11:22    0.0.0.0:*\n"
        "LISTEN 0      5           0.0.0.0:8974  0.0.0.0:*\n"
        "LISTEN 0      4096           [::]:8080     [::]:*\n"
        "LISTEN 0      4096              *:9100        *:*\n"
        "garbage\n"
    )
    assert store.parse_listening_ports(output) == {22, 8974, 8080, 9100}


def test_free_port_keeps_off_listening_and_live_ports_and_is_stable_per_run():
    first = store.free_port(set(), [], "scheduled__2026-11-21T00:00:00+00:00")
    assert first in store.SCRATCH_PORTS
    assert store.free_port(set(), [], "scheduled__2026-11-21T00:00:00+00:00") == first
    taken = store.free_port({first}, [], "scheduled__2026-11-21T00:00:00+00:00")
    assert taken != first and taken in store.SCRATCH_PORTS
    assert store.free_port(set(), [first], "scheduled__2026-11-21T00:00:00+00:00") == taken
    with pytest.raises(ValueError, match="no free TCP port"):
        store.free_port(set(store.SCRATCH_PORTS), [], "run")
