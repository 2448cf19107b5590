"""The pure devicedb knowledge, on the exact texts of the reference (shared/reference/devicedb.md)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_backup_provider.config import parse_clusters
from airflow_backup_provider.hooks.object_store import rechunk
from airflow_backup_provider.stores import devicedb as ddb

UUID = "b54a61d9-b64c-45e0-94b7-80c9e36b86fa"
T0 = datetime(2026, 11, 20, tzinfo=UTC)


# ---- the reference's texts -----------------------------------------------------------------------


def test_trigger_reply_of_the_reference():
    info = ddb.parse_snapshot('{"uuid":"b54a61d9-b64c-45e0-94b7-80c9e36b86fa","status":"processing"}')
    assert info == ddb.SnapshotInfo(UUID, "processing")


@pytest.mark.parametrize("status", ["processing", "completed", "missing", "failed"])
def test_every_documented_status_parses(status):
    body = json.dumps({"uuid": UUID, "status": status}).encode()
    assert ddb.parse_snapshot(body, expected_uuid=UUID).status == status


@pytest.mark.parametrize(
    "body",
    ['{"uuid":"b54a61d9-b64c-45e0-94b7-80c9e36b86fa","status":"done"}', '{"status":"completed"}', "not json", "[]"],
)
def test_unknown_snapshot_answers_are_errors(body):
    with pytest.raises(ddb.DevicedbResponseError):
        ddb.parse_snapshot(body)


def test_status_for_another_uuid_is_an_error():
    with pytest.raises(ddb.DevicedbResponseError, match="asked for"):
        ddb.parse_snapshot(json.dumps({"uuid": UUID, "status": "completed"}), expected_uuid="19a7e40e-adcc-4cc2-87a7-ae599272b050")


def test_tar_not_ready_body_of_the_reference():
    error = ddb.parse_error_body(b'{"message":"The snapshot could not be opened.","code":26}')
    assert error.code == ddb.SNAPSHOT_OPEN_FAILED
    assert str(error) == "The snapshot could not be opened. (code 26: snapshot could not be opened)"


@pytest.mark.parametrize("code,meaning", [(25, "snapshot in progress"), (26, "snapshot could not be opened"), (27, "snapshot could not be read")])
def test_snapshot_error_codes(code, meaning):
    assert ddb.parse_error_body(json.dumps({"message": "m", "code": code})).meaning == meaning


def test_plain_text_500_of_post_snapshot():
    error = ddb.parse_error_body(b"No snapshot directory configured\n")
    assert error.code is None and error.message == "No snapshot directory configured"


def test_keys_reply_of_the_reference():
    body = '[{"prefix":"","key":"k","context":"...","siblings":["v"]}]'
    assert ddb.parse_key_values(body, "k") == ["v"]
    assert ddb.parse_key_values("[null]", "k") == []
    assert ddb.parse_key_values("[]", "k") == []


def test_batch_body_of_the_reference():
    assert ddb.put_batch("k", "v") == [{"type": "put", "key": "k", "value": "v", "context": ""}]


def test_paths_of_the_reference():
    assert ddb.trigger_path() == "/snapshot"
    assert ddb.status_path(UUID) == f"/snapshot/{UUID}"
    assert ddb.tar_path(UUID) == f"/snapshot/{UUID}.tar"
    assert ddb.site_path("site1") == "/sites/site1"
    assert ddb.batches_path("site1", "default") == "/sites/site1/buckets/default/batches"
    assert ddb.keys_path("site1", "lww", "k") == "/sites/site1/buckets/lww/keys?key=k"
    assert ddb.base_url("10.0.0.1", 8080) == "http://10.0.0.1:8080"
    assert ddb.base_url("fe80::1", 8181) == "http://[fe80::1]:8181"


@pytest.mark.parametrize("hostile", ["../../etc", f"{UUID}; rm -rf /", f"{UUID}/../x", "", None, 12])
def test_hostile_uuids_never_reach_a_url(hostile):
    with pytest.raises(ValueError, match="is not a snapshot UUID"):
        ddb.status_path(hostile)


def test_hostile_sites_and_buckets_are_refused():
    with pytest.raises(ValueError, match="site"):
        ddb.site_path("a/b")
    with pytest.raises(ValueError, match="bucket"):
        ddb.batches_path("s", "nope")


def test_membership_from_the_cluster_overview():
    body = {
        "Nodes": [
            {"Address": {"NodeID": 4678103818387409268, "Host": "localhost", "Port": 8181}, "Capacity": 1},
            {"Address": {"NodeID": 8131915220083707319, "Host": "localhost", "Port": 8080}, "Capacity": 1},
        ],
        "ClusterSettings": {"ReplicationFactor": 3, "Partitions": 1024},
    }
    assert sorted(n.node_id for n in ddb.parse_cluster_nodes(json.dumps(body))) == ["4678103818387409268", "8131915220083707319"]
    with pytest.raises(ddb.DevicedbResponseError):
        ddb.parse_cluster_nodes('{"something": "else"}')


# ---- the verdict ---------------------------------------------------------------------------------


def judge(statuses, waited=timedelta(seconds=10), grace=timedelta(seconds=60)):
    return ddb.judge_snapshot(statuses, triggered_at=T0, now=T0 + waited, missing_grace=grace)


def test_all_completed_is_done():
    assert judge({"a": "completed", "b": "completed"}).done


def test_processing_waits():
    verdict = judge({"a": "completed", "b": "processing"})
    assert verdict.state == "waiting" and "b" in verdict.reason


def test_failed_fails_at_once_even_within_the_grace():
    verdict = judge({"a": "failed", "b": "missing", "c": "processing"}, waited=timedelta(0))
    assert verdict.state == "failed" and "failed on a" in verdict.reason


@pytest.mark.parametrize("late", ["missing", "unreachable"])
def test_missing_is_tolerated_within_the_grace_then_fails(late):
    assert judge({"a": "completed", "b": late}, waited=timedelta(seconds=59)).state == "waiting"
    verdict = judge({"a": "completed", "b": late}, waited=timedelta(seconds=61))
    assert verdict.state == "failed" and "b (" in verdict.reason and "grace" in verdict.reason


def test_unknown_status_fails():
    assert judge({"a": "exploded"}).state == "failed"


# ---- S3 layout and the manifest ------------------------------------------------------------------


def test_node_labels_are_hosts_unless_a_host_serves_several_nodes():
    assert ddb.node_labels([("10.0.0.1", 8080), ("10.0.0.2", 8080)]) == ["10.0.0.1", "10.0.0.2"]
    assert ddb.node_labels([("localhost", 8080), ("localhost", 8181)]) == ["localhost-8080", "localhost-8181"]


def test_keys():
    assert ddb.node_tar_key("devicedb", "prod", UUID, "10.0.0.1") == f"devicedb/prod/{UUID}/10.0.0.1.tar"
    assert ddb.manifest_key("/devicedb/", "prod", UUID) == f"devicedb/prod/{UUID}/manifest.json"
    assert ddb.uuid_from_key("devicedb", "prod", f"devicedb/prod/{UUID}/x.tar") == UUID
    assert ddb.uuid_from_key("devicedb", "prod", "devicedb/prod/_runs/20261120T000000Z.json") is None
    assert ddb.run_record_key("devicedb", "prod", T0) == "devicedb/prod/_runs/20261120T000000Z.json"


def manifest(uuid=UUID, day=T0, created=None):
    return ddb.build_manifest(
        cluster="prod",
        uuid=uuid,
        logical_date=day,
        created_at=created or day + timedelta(minutes=5),
        artifacts=[ddb.NodeArtifact("n1", "10.0.0.1", 8080, "k1", 10, hashlib.sha256(b"x").hexdigest())],
        check={"site": "s", "bucket": "lww", "key": "k", "value": "v"},
        membership=["2", "1"],
    )


def test_manifest_round_trip():
    body = ddb.manifest_json(manifest())
    parsed = ddb.parse_manifest(body)
    assert parsed["uuid"] == UUID and parsed["total_size"] == 10 and parsed["nodes"][0]["sha256"] == hashlib.sha256(b"x").hexdigest()
    assert parsed["check"]["value"] == "v"


@pytest.mark.parametrize(
    "change,field",
    [
        (lambda m: m.update(format="other"), "format"),
        (lambda m: m.update(nodes=[]), "nodes"),
        (lambda m: m["nodes"][0].update(sha256="abc"), "nodes.0.sha256"),
        (lambda m: m["nodes"][0].pop("size"), "nodes.0.size"),
        (lambda m: m.update(logical_date="yesterday"), "logical_date"),
    ],
)
def test_broken_manifests_name_the_field(change, field):
    data = manifest()
    change(data)
    with pytest.raises(ddb.DevicedbResponseError, match=field.replace(".", r"\.")):
        ddb.parse_manifest(json.dumps(data))


def test_choose_snapshot_by_uuid_or_newest_of_a_date():
    other = "19a7e40e-adcc-4cc2-87a7-ae599272b050"
    third = "0b6a4b1c-0000-4000-8000-000000000003"
    found = [
        manifest(UUID, T0),
        manifest(other, T0 + timedelta(hours=6)),
        manifest(third, T0 + timedelta(days=1)),
    ]
    assert ddb.choose_snapshot(found, other.upper())["uuid"] == other
    assert ddb.choose_snapshot(found, "2026-11-20")["uuid"] == other
    with pytest.raises(LookupError, match="2026-11-25"):
        ddb.choose_snapshot(found, "2026-11-25")
    with pytest.raises(LookupError, match="uuid"):
        ddb.choose_snapshot(found, "0b6a4b1c-0000-4000-8000-000000000009")
    with pytest.raises(ValueError, match="'tuesday'"):
        ddb.choose_snapshot(found, "tuesday")


def test_tar_members_must_be_plain_leveldb_files():
    names = ["000001.log", "CURRENT", "LOCK", "LOG", "MANIFEST-000001"]
    assert ddb.check_tar_members(names) == names
    assert ddb.check_tar_members(["./CURRENT"]) == ["CURRENT"]
    for bad in (["../etc/passwd"], ["/etc/passwd"], ["store/CURRENT"], [".."], []):
        with pytest.raises(ValueError):
            ddb.check_tar_members(bad)


def test_aside_paths_stay_beside_the_store():
    assert ddb.aside_path("/var/lib/devicedb/ddb1/", "manual__2026-11-20T00:00:00+00:00") == (
        "/var/lib/devicedb/ddb1.pre-restore-manual__2026-11-20T00_00_00+00_00"
    )
    assert ddb.failed_restore_path("/x/s", "a/b") == "/x/s.failed-restore-a_b"


def test_sha256sum_output():
    digest = hashlib.sha256(b"").hexdigest()
    assert ddb.parse_sha256sum(f"{digest}  /tmp/x.tar\n") == digest
    with pytest.raises(ValueError):
        ddb.parse_sha256sum("sha256sum: /tmp/x.tar: No such file or directory")


@given(st.lists(st.binary(max_size=50), max_size=20), st.integers(min_value=1, max_value=40))
def test_rechunk_keeps_every_byte_in_parts_of_the_size(chunks, size):
    parts = list(rechunk(chunks, size))
    assert b"".join(parts) == b"".join(chunks)
    assert all(len(p) == size for p in parts[:-1])
    assert all(0 < len(p) <= size for p in parts)


# ---- the clusters-file entry ---------------------------------------------------------------------


def entry(**fields):
    base = {"kind": "devicedb", "name": "prod", "bucket": "b", "nodes": [{"host": "10.0.0.1"}]}
    return parse_clusters({"entries": [{**base, **fields}]})


def test_entry_defaults():
    clusters = entry()
    assert not clusters.errors
    (cluster,) = clusters.entries
    assert cluster.missing_grace == timedelta(minutes=5) and cluster.nodes[0].http_port == 8080
    assert cluster.node_store_dir(cluster.nodes[0]) == "/var/lib/devicedb/store"
    assert cluster.spool_dir is None and cluster.spool_max_bytes == 64 * 1024**3


@pytest.mark.parametrize(
    "fields,needle",
    [
        ({"cleanup_local_snapshots": True}, "cleanup_local_snapshots needs snapshot_dir"),
        ({"cleanup_local_snapshots": True, "snapshot_dir": "/var/lib/ddb/snap", "verify_upload": False},
         "cleanup_local_snapshots needs verify_upload: true"),
        ({"service_stop_command": ["systemctl", "stop; rm -rf /"]}, "service_stop_command"),
        ({"check_bucket": "nope"}, "check_bucket"),
        ({"drill_serve_command": ["devicedb-service", "serve", "-conf"]}, "drill_serve_command needs drill_host"),
        ({"drill_host": "10.0.0.9", "drill_serve_command": ["serve", "$(reboot)"]}, "drill_serve_command"),
        ({"nodes": [{"host": "10.0.0.1"}, {"host": "10.0.0.1"}]}, "listed twice"),
        ({"nodes": [{"host": "a b"}]}, "nodes.0.host"),
        ({"missing_grace": "soon"}, "missing_grace"),
        ({"membership_check": "maybe"}, "membership_check"),
        ({"store_dir": "relative/path"}, "store_dir"),
        ({"spool_dir": "spool"}, "spool_dir"),
        ({"spool_max_bytes": 1000}, "spool_max_bytes"),
        ({"spool_max_bytes": "lots"}, "spool_max_bytes"),
    ],
)
def test_bad_entries_name_the_field(fields, needle):
    clusters = entry(**fields)
    assert not clusters.entries
    assert needle in str(clusters.errors[0])


# ---- the defects of a real 1.10 cluster (the reference's "Observed" section) -------------------


def go_tar(files: dict[str, bytes]) -> bytes:
    """A node tar as devicedb writes it: flat members, mode 0644, uid/gid 0, mtime 0, then two
    zero blocks (Go's archive/tar pads to no record size)."""
    import tarfile

    out = bytearray()
    for name, data in files.items():
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o644, 0, 0, 0
        out += info.tobuf(format=tarfile.USTAR_FORMAT)
        out += data + b"\0" * (-len(data) % 512)
    return bytes(out + b"\0" * 1024)


SMALL_STORE = {"000001.log": b"x" * 700, "CURRENT": b"MANIFEST-000000\n", "LOCK": b"", "LOG": b"log\n", "MANIFEST-000000": b"m" * 50}


def check_tar(data: bytes):
    import io

    return ddb.check_snapshot_tar(io.BytesIO(data))


def test_a_whole_node_tar_of_the_reference_passes():
    data = go_tar(SMALL_STORE)
    checked = check_tar(data)
    assert checked.members == ["000001.log", "CURRENT", "LOCK", "LOG", "MANIFEST-000000"] and checked.size == len(data)
    bigger = go_tar({**SMALL_STORE, "000005.ldb": b"t" * 5000, "000007.log": b"l" * 3})
    assert "000005.ldb" in check_tar(bigger).members


def test_a_tar_cut_anywhere_is_refused():
    data = go_tar(SMALL_STORE)
    # at a member boundary (before the last member's header), inside a member, inside the end marker
    boundary = len(data) - 1024 - 512 - 512
    for cut, needle in [(boundary, "end-of-archive"), (600, "cut"), (len(data) - 10, "end-of-archive"), (len(data) - 1024, "end-of-archive")]:
        with pytest.raises(ValueError, match=needle):
            check_tar(data[:cut])


@pytest.mark.parametrize(
    "files,needle",
    [
        ({}, "empty"),
        ({"CURRENT": b"x"}, "not a LevelDB store"),
        ({**SMALL_STORE, "../etc/passwd": b"x"}, "plain LevelDB file names"),
        ({**SMALL_STORE, "store/CURRENT": b"x"}, "plain LevelDB file names"),
    ],
)
def test_a_tar_that_is_not_a_store_is_refused(files, needle):
    with pytest.raises(ValueError, match=needle):
        check_tar(go_tar(files) if files else b"\0" * 1024)


def test_a_500_no_snapshot_directory_is_final_and_names_the_node():
    assert ddb.status_error_kind(500, b"No snapshot directory configured") == ddb.NO_SNAPSHOT_STORE
    assert ddb.status_error_kind(500, b'{"message":"The storage driver experienced an error","code":3}') == ddb.UNREACHABLE
    assert ddb.status_error_kind(None, "connection refused") == ddb.UNREACHABLE
    verdict = ddb.judge_snapshot(
        {"a": "completed", "b": ddb.NO_SNAPSHOT_STORE},
        triggered_at=T0,
        now=T0,
        missing_grace=timedelta(minutes=5),
        errors={"b": "devicedb node b:8080: GET /snapshot/u: HTTP 500: No snapshot directory configured"},
    )
    assert verdict.state == "failed" and "no snapshot store on b" in verdict.reason
    assert "No snapshot directory configured" in verdict.reason


def test_snapshot_folders_are_named_by_uuid_and_node_id():
    big_id = "17756478523337819288"  # > 2**63, as on the real cluster
    other = "19a7e40e-adcc-4cc2-87a7-ae599272b050"
    folders = ddb.parse_snapshot_folders([f"snapshot-{UUID}-{big_id}", f"snapshot-{other}-12", UUID, "lost+found", "snapshot-x-1"])
    assert sorted((f.uuid, f.node_id) for f in folders) == [(other, "12"), (UUID, big_id)]
    assert ddb.folder_to_remove(folders, UUID, big_id).name == f"snapshot-{UUID}-{big_id}"
    assert ddb.folder_to_remove(folders, UUID, None).name == f"snapshot-{UUID}-{big_id}"  # the only one
    assert ddb.folder_to_remove(folders, UUID, "12") is None
    shared = ddb.parse_snapshot_folders([f"snapshot-{UUID}-1", f"snapshot-{UUID}-2"])  # two nodes, one store
    assert ddb.folder_to_remove(shared, UUID, None) is None and ddb.folder_to_remove(shared, UUID, "2").node_id == "2"
    assert ddb.new_snapshots([other], folders) == [UUID]


def test_node_id_from_the_cluster_overview_of_the_reference():
    body = (
        '{"Nodes":[{"Address":{"NodeID":17756478523337819288,"Host":"10.0.0.1","Port":8080}},'
        '{"Address":{"NodeID":42,"Host":"10.0.0.2","Port":8080}}],'
        '"ClusterSettings":{"ReplicationFactor":3,"Partitions":1024},"PartitionDistribution":[],"TokenAssignments":[]}'
    )
    nodes = ddb.parse_cluster_nodes(body)
    assert ddb.node_id_at(nodes, "10.0.0.1", 8080) == "17756478523337819288"
    assert ddb.node_id_at(nodes, "10.0.0.3", 8080) is None
    assert sorted(n.node_id for n in nodes) == ["17756478523337819288", "42"]


def test_batch_answers_of_the_reference():
    short = ddb.parse_batch_result('{"nApplied":2,"replicas":3,"Quorum":true,"patch":null}')
    assert short == ddb.BatchResult(2, 3, True) and not short.everywhere
    assert ddb.parse_batch_result('{"nApplied":3,"replicas":3,"Quorum":true,"patch":null}').everywhere
    with pytest.raises(ddb.DevicedbResponseError, match="batch response"):
        ddb.parse_batch_result("\n")
    with pytest.raises(ddb.DevicedbResponseError, match="nApplied"):
        ddb.parse_batch_result('{"patch":null}')


CHECK = {"site": "airflow-backup", "bucket": "lww", "key": "airflow-backup-check", "value": "prod|2026-11-20|ab12"}


def test_check_key_read_back_names_node_key_expected_and_found():
    assert ddb.check_key_problem("n1", CHECK, ["prod|2026-11-20|ab12"]) is None
    assert ddb.check_key_problem("n1", CHECK, ["older", "prod|2026-11-20|ab12"]) is None  # a sibling is enough
    assert ddb.check_key_problem("n1", CHECK, ["prod|2026-11-19|ff00"]) == (
        "node n1: check key 'airflow-backup-check' (site 'airflow-backup', bucket 'lww') reads "
        "'prod|2026-11-19|ff00', the backup recorded 'prod|2026-11-20|ab12'"
    )
    assert "reads nothing (the key is missing)" in ddb.check_key_problem("n1", CHECK, [])


def test_scratch_node_config_is_a_single_node_of_its_own_folders():
    config = ddb.scratch_node_config(address="10.0.0.9", port=23456, store="/s/node/store", snapshot_store="/s/node/snapshots")
    assert config == {"address": "10.0.0.9", "port": 23456, "store": "/s/node/store", "snapshot_store": "/s/node/snapshots", "peers": []}
