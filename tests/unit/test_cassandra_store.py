"""stores/cassandra_*.py: nodetool parsers on the exact texts of reference/cassandra.md, the walker, keys, manifests, restore."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_backup_provider.stores import (
    cassandra_files,
    cassandra_layout,
    cassandra_manifest,
    cassandra_nodetool,
    cassandra_restore,
)

SNAPSHOT_TEXT = (
    "Requested creating snapshot(s) for [ks1, ks2] with snapshot name [TAG] and options {skipFlush=false}\n"
    "Snapshot directory: TAG\n"
)
SNAPSHOT_ALL_TEXT = (
    "Requested creating snapshot(s) for [all keyspaces] with snapshot name [abp-1] and options {skipFlush=false}\n"
    "Snapshot directory: abp-1\n"
)
LISTSNAPSHOTS_40 = """Snapshot Details: {}
Snapshot name  Keyspace name  Column family name  True size  Size on disk
abp-1          shop           orders              0 bytes    1.5 MB
abp-1          shop           customers           4.87 KB    9.2 KB

Total TrueDiskSpaceUsed: 1.5 GB

""".format("")  # nodetool prints "Snapshot Details: " with a trailing space
LISTSNAPSHOTS_41 = """Snapshot Details: {}
Snapshot name  Keyspace name  Column family name  True size  Size on disk  Creation time
abp-1          shop           orders              0 bytes    1.5 MiB       2026-11-20T01:00:00.000Z
1669000000000  system_schema  tables              12 KiB     12 KiB        2026-11-20T02:00:00.000Z

Total TrueDiskSpaceUsed: 1.5 GB

""".format("")
NO_SNAPSHOTS = "Snapshot Details: \nThere are no snapshots\n"
CLEAR_TEXT = "Requested clearing snapshot(s) for [all keyspaces] with snapshot name [TAG]\n"
STATUS_TEXT = """Datacenter: datacenter1
=======================
Status=Up/Down
|/ State=Normal/Leaving/Joining/Moving
--  Address    Load       Tokens  Owns (effective)  Host ID                               Rack
UN  10.0.0.1   1.2 GiB    16      33.3%             6d1e0a9e-...                          rack1
DN  10.0.0.2   1.1 GiB    16      33.3%             ...                                   rack1
"""


def test_command_lines():
    assert cassandra_nodetool.flush_argv() == ["nodetool", "flush"]
    assert cassandra_nodetool.flush_argv("/opt/nt", "shop", ["orders"]) == ["/opt/nt", "flush", "shop", "orders"]
    assert cassandra_nodetool.snapshot_argv("abp-1", ["ks1", "ks2"]) == ["nodetool", "snapshot", "-t", "abp-1", "ks1", "ks2"]
    assert cassandra_nodetool.snapshot_argv("abp-1") == ["nodetool", "snapshot", "-t", "abp-1"]
    assert cassandra_nodetool.listsnapshots_argv() == ["nodetool", "listsnapshots"]
    assert cassandra_nodetool.clearsnapshot_argv("abp-1") == ["nodetool", "clearsnapshot", "-t", "abp-1"]
    assert cassandra_nodetool.status_argv() == ["nodetool", "status"]


@pytest.mark.parametrize(
    "call",
    [
        lambda: cassandra_nodetool.snapshot_argv("abp-1", ["shop; rm -rf /"]),
        lambda: cassandra_nodetool.snapshot_argv("--all"),
        lambda: cassandra_nodetool.clearsnapshot_argv(""),
        lambda: cassandra_nodetool.clearsnapshot_argv("a b"),
        lambda: cassandra_nodetool.flush_argv("nodetool", "shop", ["orders$(id)"]),
    ],
)
def test_hostile_arguments_never_become_commands(call):
    with pytest.raises(cassandra_layout.CassandraNameError):
        call()


def test_error_names_field_and_value():
    with pytest.raises(cassandra_layout.CassandraNameError, match=r"keyspaces: value 'a;b' is not a Cassandra keyspace name"):
        cassandra_files.Scope(keyspaces=("a;b",))
    with pytest.raises(cassandra_layout.CassandraNameError, match=r"hosts: value 'x y' is not a hostname"):
        cassandra_layout.validate_host("x y", "hosts")


def test_parse_snapshot():
    result = cassandra_nodetool.parse_snapshot(SNAPSHOT_TEXT, "TAG")
    assert result == cassandra_nodetool.SnapshotResult(tag="TAG", keyspaces=("ks1", "ks2"))
    assert cassandra_nodetool.parse_snapshot(SNAPSHOT_ALL_TEXT, "abp-1").keyspaces == ()
    with pytest.raises(cassandra_nodetool.NodetoolOutputError):
        cassandra_nodetool.parse_snapshot(SNAPSHOT_TEXT, "OTHER")
    already = cassandra_nodetool.parse_snapshot("error: Snapshot TAG already exists\n-- StackTrace --\n", "TAG")
    assert already.already_exists
    with pytest.raises(cassandra_nodetool.NodetoolOutputError):
        cassandra_nodetool.parse_snapshot("error: Snapshot OTHER already exists", "TAG")


def test_parse_listsnapshots_by_header_both_versions():
    rows, total = cassandra_nodetool.parse_listsnapshots(LISTSNAPSHOTS_40)
    assert [(r.tag, r.keyspace, r.table) for r in rows] == [("abp-1", "shop", "orders"), ("abp-1", "shop", "customers")]
    assert rows[0].size_on_disk == int(1.5 * 1024**2) and rows[1].true_size == int(4.87 * 1024)
    assert rows[0].created_at is None
    assert total == int(1.5 * 1024**3)
    rows, total = cassandra_nodetool.parse_listsnapshots(LISTSNAPSHOTS_41)
    assert rows[1] == cassandra_nodetool.ListedSnapshot("1669000000000", "system_schema", "tables", 12 * 1024, 12 * 1024, "2026-11-20T02:00:00.000Z")
    assert rows[0].size_on_disk == int(1.5 * 1024**2)
    assert cassandra_nodetool.parse_listsnapshots(NO_SNAPSHOTS) == ([], 0)
    with pytest.raises(cassandra_nodetool.NodetoolOutputError):
        cassandra_nodetool.parse_listsnapshots("nodetool: Failed to connect")


def test_parse_clearsnapshot():
    assert cassandra_nodetool.parse_clearsnapshot(CLEAR_TEXT, "TAG") == ()
    with pytest.raises(cassandra_nodetool.NodetoolOutputError):
        cassandra_nodetool.parse_clearsnapshot("error: Specify snapshot name or --all", "TAG")
    with pytest.raises(cassandra_nodetool.NodetoolOutputError):
        cassandra_nodetool.parse_clearsnapshot(CLEAR_TEXT, "OTHER")


def test_parse_status():
    nodes = cassandra_nodetool.parse_status(STATUS_TEXT)
    assert [(n.address, n.status, n.state, n.load, n.owns, n.rack) for n in nodes] == [
        ("10.0.0.1", "U", "N", "1.2 GiB", "33.3%", "rack1"),
        ("10.0.0.2", "D", "N", "1.1 GiB", "33.3%", "rack1"),
    ]
    assert nodes[0].up and not nodes[1].up and nodes[0].datacenter == "datacenter1"
    with pytest.raises(cassandra_nodetool.NodetoolOutputError):
        cassandra_nodetool.parse_status("error: no\n")


def test_sizes():
    assert cassandra_nodetool.parse_size("0 bytes") == 0
    assert cassandra_nodetool.format_size(0) == "0 bytes"
    assert cassandra_nodetool.format_size(1.5 * 1024**3) == "1.5 GB"
    assert cassandra_nodetool.format_size(4.87 * 1024, binary=True) == "4.87 KiB"


def test_tag_is_stable_per_run_and_distinct_between_runs():
    moment = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    tag = cassandra_layout.snapshot_tag(moment, "scheduled__2026-11-20")
    assert tag == cassandra_layout.snapshot_tag(moment, "scheduled__2026-11-20")
    assert tag != cassandra_layout.snapshot_tag(moment, "manual__2026-11-20")
    assert tag.startswith("abp-20261120T010000-") and cassandra_layout.is_our_tag(tag)
    assert cassandra_layout.validate_tag(tag) == tag
    assert cassandra_layout.day_of(moment) == "20261120"


# ---- the walker, on the simulated node's real layout ------------------------------------------

TOOLS = Path(__file__).resolve().parents[1] / "sandbox" / "tools" / "cassandra"


def run_tool(root: Path, tool: str, *args: str) -> str:
    env = {**os.environ, "SANDBOX_NODE_ROOT": str(root), "SANDBOX_NODE_ADDRESS": "10.0.0.1"}
    done = subprocess.run([sys.executable, str(TOOLS / f"{tool}.py"), *args], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def os_lister(path: str) -> list[cassandra_files.DirEntry]:
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        raise
    return [cassandra_files.DirEntry(e.name, e.is_dir(), e.stat().st_size if e.is_file() else 0) for e in entries]


@pytest.fixture
def node(tmp_path) -> Path:
    run_tool(tmp_path, "cassandra_sim", "setup", json.dumps({"data_dir": str(tmp_path / "data"), "version": "4.1"}))
    run_tool(tmp_path, "cassandra_sim", "create", "shop", "orders", "customers")
    run_tool(tmp_path, "cassandra_sim", "create", "audit", "events")
    for ks, table in (("shop", "orders"), ("shop", "customers"), ("audit", "events")):
        run_tool(tmp_path, "cassandra_sim", "write", ks, table, "5000", "1")
    run_tool(tmp_path, "nodetool", "flush")
    run_tool(tmp_path, "cassandra_sim", "write", "shop", "orders", "700", "2")
    return tmp_path


def test_simulated_nodetool_prints_what_the_parsers_read(node):
    out = run_tool(node, "nodetool", "snapshot", "-t", "abp-1", "shop")
    assert out == (
        "Requested creating snapshot(s) for [shop] with snapshot name [abp-1] and options {skipFlush=false}\n"
        "Snapshot directory: abp-1\n"
    )
    assert cassandra_nodetool.parse_snapshot(out, "abp-1").keyspaces == ("shop",)
    rows, _ = cassandra_nodetool.parse_listsnapshots(run_tool(node, "nodetool", "listsnapshots"))
    assert {(r.keyspace, r.table) for r in rows} == {("shop", "orders"), ("shop", "customers")}
    assert all(r.created_at for r in rows)
    assert cassandra_nodetool.parse_status(run_tool(node, "nodetool", "status"))[0].address == "10.0.0.1"
    assert cassandra_nodetool.parse_clearsnapshot(run_tool(node, "nodetool", "clearsnapshot", "-t", "abp-1"), "abp-1") == ()
    assert cassandra_nodetool.parse_listsnapshots(run_tool(node, "nodetool", "listsnapshots")) == ([], 0)


def test_snapshots_are_hard_links_and_flush_feeds_backups(node):
    run_tool(node, "nodetool", "snapshot", "-t", "abp-1")
    table = next((node / "data" / "shop").glob("orders-*"))
    snap = table / "snapshots" / "abp-1"
    data_files = sorted(p.name for p in snap.iterdir() if p.name.endswith("-Data.db"))
    assert data_files == ["nb-1-big-Data.db", "nb-2-big-Data.db"]  # the snapshot flushed the memtable
    assert (snap / "nb-1-big-Data.db").stat().st_ino == (table / "nb-1-big-Data.db").stat().st_ino
    assert (table / "backups" / "nb-2-big-Data.db").stat().st_ino == (table / "nb-2-big-Data.db").stat().st_ino
    assert json.loads((snap / "manifest.json").read_text())["files"] == data_files
    assert "CREATE TABLE" in (snap / "schema.cql").read_text()


def test_walker_scope_and_sources(node):
    run_tool(node, "nodetool", "snapshot", "-t", "abp-1")
    result = cassandra_files.walk_data_dir(str(node / "data"), "abp-1", cassandra_files.Scope(), os_lister)
    assert {(f.keyspace, f.table) for f in result.files} == {("shop", "orders"), ("shop", "customers"), ("audit", "events")}
    assert {f.source for f in result.files} == {"snapshot", "backups"}
    assert len(result.schemas) == 3
    assert not any(f.name in ("manifest.json", "schema.cql") for f in result.files)
    only = cassandra_files.walk_data_dir(str(node / "data"), "abp-1", cassandra_files.Scope(tables=("shop.orders",)), os_lister)
    assert {f.table for f in only.files} == {"orders"}
    without = cassandra_files.walk_data_dir(
        str(node / "data"), "abp-1", cassandra_files.Scope(exclude_keyspaces=("audit",), exclude_tables=("customers",)), os_lister
    )
    assert {(f.keyspace, f.table) for f in without.files} == {("shop", "orders")}
    # the plan uploads each SSTable once, even when linked in the snapshot and in backups/
    plan = cassandra_manifest.plan_upload(result.files, [], prefix="p", cluster="c", day="20261120", host="10.0.0.1", tag="abp-1")
    paths = [f.path for f, _ in plan.upload]
    assert len(paths) == len(set(paths))
    assert any(f.source == "snapshot,backups" for f, _ in plan.upload)
    assert all(key.startswith("p/c/20261120/10.0.0.1/") and key.endswith(".zst") for _, key in plan.upload)


def test_secondary_index_sstables_live_in_dot_folders_and_the_walker_takes_them(node):
    run_tool(node, "cassandra_sim", "index", "shop", "orders", "orders_by_customer_idx")
    run_tool(node, "cassandra_sim", "write", "shop", "orders", "3000", "3")
    run_tool(node, "nodetool", "flush")
    table = next((node / "data" / "shop").glob("orders-*"))
    index = table / ".orders_by_customer_idx"
    assert sorted(p.name for p in index.iterdir()) == sorted(f"nb-1-big-{c}" for c in COMPONENTS)
    assert (table / "backups" / ".orders_by_customer_idx" / "nb-1-big-Data.db").stat().st_ino == (index / "nb-1-big-Data.db").stat().st_ino
    run_tool(node, "nodetool", "snapshot", "-t", "abp-1")
    snap = table / "snapshots" / "abp-1"
    assert (snap / ".orders_by_customer_idx" / "nb-1-big-Data.db").stat().st_ino == (index / "nb-1-big-Data.db").stat().st_ino
    assert not (snap / ".orders_by_customer_idx" / "manifest.json").exists()
    result = cassandra_files.walk_data_dir(str(node / "data"), "abp-1", cassandra_files.Scope(tables=("shop.orders",)), os_lister)
    index_files = {(f.source, f.name) for f in result.files if f.name.startswith(".")}
    assert index_files == {(source, f".orders_by_customer_idx/nb-1-big-{c}") for c in COMPONENTS for source in ("snapshot", "backups")}
    plan = cassandra_manifest.plan_upload(result.files, [], prefix="p", cluster="c", day="20261120", host="10.0.0.1", tag="abp-1")
    keys = {f.path: key for f, key in plan.upload}
    path = f"shop/{table.name}/.orders_by_customer_idx/nb-1-big-Data.db"
    assert keys[path] == f"p/c/20261120/10.0.0.1/{path}.zst"
    assert next(f for f, _ in plan.upload if f.path == path).source == "snapshot,backups"
    # a manifest may name an index file, and a restore puts it back in its index folder
    assert cassandra_manifest._check_relative_path(path) == path


def test_an_empty_table_is_in_the_manifest_and_gets_its_restore_folder(node):
    run_tool(node, "cassandra_sim", "create", "shop", "returns")  # never written: no SSTable
    run_tool(node, "nodetool", "snapshot", "-t", "abp-1")
    result = cassandra_files.walk_data_dir(str(node / "data"), "abp-1", cassandra_files.Scope(), os_lister)
    empty = f"shop/returns-{next((node / 'data' / 'shop').glob('returns-*')).name.split('-')[1]}"
    assert empty in result.snapshot_tables and not any(f.path.startswith(empty + "/") for f in result.files)
    assert len(result.snapshot_tables) == 4
    plan = cassandra_manifest.plan_upload(result.files, [], prefix="p", cluster="c", day="20261120", host="h", tag="abp-1")
    manifest = cassandra_manifest.build_manifest(
        cluster="c", host="h", day="20261120", tag="abp-1", run_id="r", created_at=datetime.now(UTC), plan=plan,
        uploaded={k: {"size": f.size, "sha256": "0", "compressed_size": 1} for f, k in plan.upload},
        schema_key="", status_key="", data_dir="/d", tables=result.snapshot_tables,
    )
    parsed = cassandra_manifest.parse_manifest(manifest.to_json())
    assert empty in parsed.tables
    assert empty in cassandra_restore.select_restore_tables(parsed, cassandra_files.Scope(keyspaces=("shop",)))
    assert cassandra_restore.select_restore_tables(parsed, cassandra_files.Scope(tables=("shop.returns",))) == [empty]
    assert cassandra_restore.select_restore_entries(parsed, cassandra_files.Scope(tables=("shop.returns",))) == []
    # a manifest written before `tables` existed still gives the folders of its files
    old = cassandra_manifest.parse_manifest(json.dumps({k: v for k, v in json.loads(manifest.to_json()).items() if k != "tables"}))
    assert cassandra_restore.select_restore_tables(old, cassandra_files.Scope()) == sorted(set(result.snapshot_tables) - {empty})


COMPONENTS = ("CompressionInfo.db", "Data.db", "Digest.crc32", "Filter.db", "Index.db", "Statistics.db", "Summary.db", "TOC.txt")


def test_walker_refuses_hostile_folder_names(node):
    run_tool(node, "nodetool", "snapshot", "-t", "abp-1")
    (node / "data" / "x;reboot").mkdir()
    with pytest.raises(cassandra_layout.CassandraNameError, match=r"x;reboot"):
        cassandra_files.walk_data_dir(str(node / "data"), "abp-1", cassandra_files.Scope(), os_lister)


# ---- keys, manifests, dedup ----------------------------------------------------------------------


def make_file(path: str, size: int, source: str = "snapshot") -> cassandra_files.NodeFile:
    ks, table_dir, name = path.split("/", 2)
    return cassandra_files.NodeFile(ks, table_dir, source, f"/data/{path}", name, size)


TD = "orders-" + "a" * 32


def test_plan_dedups_against_the_days_manifests_and_never_overwrites():
    first_files = [make_file(f"shop/{TD}/nb-1-big-Data.db", 10), make_file(f"shop/{TD}/nb-1-big-Index.db", 3)]
    plan = cassandra_manifest.plan_upload(first_files, [], prefix="p", cluster="c", day="20261120", host="h1", tag="t1")
    assert plan.mode == "full" and len(plan.upload) == 2
    uploaded = {key: {"size": f.size, "sha256": "0" * 64, "compressed_size": f.size + 1} for f, key in plan.upload}
    first = cassandra_manifest.build_manifest(
        cluster="c", host="h1", day="20261120", tag="t1", run_id="r1", created_at=datetime(2026, 11, 20, tzinfo=UTC),
        plan=plan, uploaded=uploaded, schema_key="s", status_key="st", data_dir="/data", cluster_hosts=["h1", "h2"],
    )
    parsed = cassandra_manifest.parse_manifest(first.to_json())
    assert parsed == first
    second_files = [*first_files, make_file(f"shop/{TD}/nb-2-big-Data.db", 7, "backups"), make_file(f"shop/{TD}/nb-1-big-Index.db", 4)]
    second_files = [second_files[0], second_files[2], second_files[3]]
    plan2 = cassandra_manifest.plan_upload(second_files, [parsed], prefix="p", cluster="c", day="20261120", host="h1", tag="t2")
    assert plan2.mode == "incremental"
    assert [f.name for f, _ in plan2.reuse] == ["nb-1-big-Data.db"]
    keys = dict((f.name, k) for f, k in plan2.upload)
    assert keys["nb-2-big-Data.db"].endswith(f"/shop/{TD}/nb-2-big-Data.db.zst")
    # same path, another size: its own key, the first object stays as the first manifest says
    assert keys["nb-1-big-Index.db"].endswith("nb-1-big-Index.db.t2.zst")


def test_manifest_is_only_built_from_uploaded_objects():
    plan = cassandra_manifest.plan_upload([make_file(f"shop/{TD}/nb-1-big-Data.db", 10)], [], prefix="p", cluster="c", day="20261120", host="h", tag="t")
    with pytest.raises(cassandra_manifest.ManifestError, match="not uploaded"):
        cassandra_manifest.build_manifest(
            cluster="c", host="h", day="20261120", tag="t", run_id="r", created_at=datetime.now(UTC), plan=plan,
            uploaded={}, schema_key="", status_key="", data_dir="/d",
        )


def test_manifest_paths_cannot_escape_the_restore_folder():
    bad = {"format": 1, "cluster": "c", "host": "h", "day": "20261120", "tag": "t", "run_id": "r", "created_at": "x",
           "mode": "full", "files": [{"path": "shop/../../etc/passwd", "key": "k", "size": 1, "sha256": "0", "compressed_size": 1}]}
    with pytest.raises(cassandra_manifest.ManifestError):
        cassandra_manifest.parse_manifest(json.dumps(bad))


def test_verify_entries():
    entry = cassandra_manifest.ManifestEntry(path=f"shop/{TD}/f", key="k", size=5, sha256="x", compressed_size=9)
    assert cassandra_manifest.verify_entries([entry], {"k": 9}) == []
    assert cassandra_manifest.verify_entries([entry], {"k": None})[0].problem == "missing"
    assert "size 8" in cassandra_manifest.verify_entries([entry], {"k": 8})[0].problem


def test_manifest_keys_days_and_completeness():
    keys = [
        "p/c/20261120/h1/backup-meta/t1/manifest.json",
        "p/c/20261120/h2/backup-meta/t1/manifest.json",
        "p/c/20261120/h1/shop/x/f.zst",
        "p/c/20261121/h1/backup-meta/t2/manifest.json",
        "p/other/20261120/h1/backup-meta/t1/manifest.json",
    ]
    refs = cassandra_layout.parse_manifest_keys(keys, "p", "c")
    assert [(r.day, r.host, r.tag) for r in refs] == [("20261120", "h1", "t1"), ("20261120", "h2", "t1"), ("20261121", "h1", "t2")]
    assert cassandra_restore.is_day_complete(refs, "20261120", ["h1", "h2"])
    assert not cassandra_restore.is_day_complete(refs, "20261121", ["h1", "h2"])
    assert cassandra_restore.latest_manifest(refs, "20261120", "h2").tag == "t1"
    assert cassandra_layout.parse_day_folders(["p/c/20261120/", "p/c/notes/", "p/c/2026112/"], "p", "c") == ["20261120"]


def test_prune_guard():
    # The guard of every kind's deletes (retention.delete_refusals), on cassandra's day folders.
    from airflow_backup_provider.retention import (
        REASON_NEWER,
        REASON_NEWEST,
        REASON_PENDING,
        BackupItem,
        delete_refusals,
        newest_complete,
    )

    def day(id, complete=True):
        return BackupItem(id=id, created_at=cassandra_layout.day_start(id), complete=complete)

    items = [day("20261101"), day("20261102"), day("20261103", complete=False)]
    as_of = datetime(2026, 11, 5, tzinfo=UTC)
    newest = newest_complete(items, as_of)
    assert newest.id == "20261102"
    assert delete_refusals(items[0], items[0], as_of, newest) == []
    assert REASON_NEWEST in delete_refusals(items[1], items[1], as_of, newest)
    assert REASON_PENDING in delete_refusals(items[2], items[2], as_of, newest)  # was allowed: stricter now
    future = day("20261106")
    assert REASON_NEWER in delete_refusals(future, future, as_of, newest)


def test_restore_folder_rules():
    assert cassandra_restore.restore_folder_for("/tmp/cassandra_restore", "10.0.0.1") == "/tmp/cassandra_restore"
    assert cassandra_restore.restore_folder_for("/r/{host}", "10.0.0.1") == "/r/10.0.0.1"
    for bad in ("/", "relative", "/tmp/../etc", "/tmp/x y"):
        with pytest.raises(cassandra_layout.CassandraNameError):
            cassandra_restore.restore_folder_for(bad, "h")
    with pytest.raises(cassandra_layout.CassandraNameError, match="overlaps the live data folder"):
        cassandra_restore.check_outside("/var/lib/cassandra/data/restore", "/var/lib/cassandra/data")
    with pytest.raises(cassandra_layout.CassandraNameError):
        cassandra_restore.check_outside("/var/lib", "/var/lib/cassandra/data")
    assert cassandra_restore.check_outside("/var/lib/cassandra/restore", "/var/lib/cassandra/data")


def test_next_steps_name_the_node_restart_method():
    node = cassandra_restore.RestoredNode("h1", "/tmp/cassandra_restore", "/var/lib/cassandra/data", "/var/lib/cassandra/commitlog")
    text = cassandra_restore.next_steps([node], ["shop/orders-x"])
    assert "node restart method" in text
    assert "/var/lib/cassandra/commitlog/*" in text and "nodetool repair" in text
    assert "check that /var/lib/cassandra/data/<keyspace>/ and /tmp/cassandra_restore/<keyspace>/" in text


def test_next_steps_name_each_nodes_own_folders():
    nodes = [
        cassandra_restore.RestoredNode("h1", "/r/h1", "/var/lib/cassandra/data", "/var/lib/cassandra/commitlog"),
        cassandra_restore.RestoredNode("h2", "/r/h2", "/data2/cassandra", "/data2/commitlog"),
    ]
    text = cassandra_restore.next_steps(nodes, ["shop/orders-x"])
    assert "  h1: /r/h1 -> /var/lib/cassandra/data, /var/lib/cassandra/commitlog" in text
    assert "  h2: /r/h2 -> /data2/cassandra, /data2/commitlog" in text
    # no step names one node's folder as if it were every node's
    assert "remove <its commit log folder>/*" in text and "check that <its data folder>/<keyspace>/" in text


def test_system_keyspaces_a_restore_leaves_out():
    assert cassandra_restore.excluded_system_keyspaces("cluster") == ("system",)
    assert cassandra_restore.excluded_system_keyspaces("none") == cassandra_restore.SYSTEM_KEYSPACES
    assert cassandra_restore.excluded_system_keyspaces("all") == ()
    # named in keyspaces, or as keyspace.table: taken whatever the choice
    assert "system_auth" not in cassandra_restore.excluded_system_keyspaces("none", ["system_auth"])
    assert "system" not in cassandra_restore.excluded_system_keyspaces("cluster", [], ["system.local"])
    with pytest.raises(cassandra_layout.CassandraNameError, match=r"param 'system_keyspaces': value 'some' is not one of \['all', 'cluster', 'none'\]"):
        cassandra_restore.excluded_system_keyspaces("some")


def test_restore_names_must_match_the_backup_exactly():
    manifest = cassandra_manifest.Manifest(
        cluster="c", host="h", day="20261120", tag="t", run_id="r", created_at="x", mode="full", files=(),
        tables=(f"Shop_EU/Orders-{'a' * 32}", f"audit/events-{'b' * 32}"),
    )
    cassandra_restore.check_restore_names(["Shop_EU"], ["Shop_EU.Orders", "events"], [manifest], "the backup of 20261120")
    with pytest.raises(cassandra_layout.CassandraNameError, match=r"param 'keyspaces': value 'shop_eu' is not in the backup of 20261120; did you mean 'Shop_EU'\? \(names are case-sensitive\)"):
        cassandra_restore.check_restore_names(["shop_eu"], [], [manifest], "the backup of 20261120")
    with pytest.raises(cassandra_layout.CassandraNameError, match=r"param 'tables': value 'orders' .*did you mean 'Orders'\?"):
        cassandra_restore.check_restore_names([], ["orders"], [manifest], "the backup of 20261120")
    with pytest.raises(cassandra_layout.CassandraNameError, match=r"value 'audit.event' .*did you mean 'audit.events'\?"):
        cassandra_restore.check_restore_names([], ["audit.event"], [manifest], "the backup of 20261120")
    with pytest.raises(cassandra_layout.CassandraNameError, match=r"value 'metrics' is not in the backup of 20261120 \(it has: Shop_EU, audit\)"):
        cassandra_restore.check_restore_names(["metrics"], [], [manifest], "the backup of 20261120")
