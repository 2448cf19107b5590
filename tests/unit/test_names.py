"""names.py: every name pattern is whole-value (a trailing newline never passes), and the stores'
checks are the clusters file's checks."""

import pytest

from airflow_backup_provider import names
from airflow_backup_provider.config import parse_clusters
from airflow_backup_provider.stores import bup, cassandra_layout, devicedb, riak


@pytest.mark.parametrize(
    "check, value",
    [
        (riak.check_erlang_node, "riak@10.0.0.1\n"),
        (riak.check_service, "riak_kv\n"),
        (bup.check_branch, "web1\n"),
        (bup.check_period, "7d\n"),
        (lambda value: devicedb.check_segment(value, "check_site"), "site\n"),
    ],
)
def test_store_checks_refuse_a_trailing_newline(check, value):
    with pytest.raises(ValueError, match="value"):
        check(value)


def test_a_table_has_at_most_one_keyspace():
    assert cassandra_layout.validate_table("shop.orders") == "shop.orders"
    with pytest.raises(cassandra_layout.CassandraNameError, match=r"tables: value 'a.b.c' is not a Cassandra table name"):
        cassandra_layout.validate_table("a.b.c", "tables")


def test_error_names_field_and_value_or_gives_the_reason_alone():
    with pytest.raises(names.InvalidName, match=r"^node_name: value 'x y' is not an Erlang node name"):
        names.check_erlang_node("x y", "node_name")
    with pytest.raises(names.InvalidName, match=r"^is not an Erlang node name"):
        names.check_erlang_node("x y")


def test_the_clusters_file_and_the_store_accept_the_same_erlang_names():
    entry = {"kind": "riak", "name": "r", "nodes": [{"host": "n1", "instance_id": "i-1", "node_name": "riak@n1\n"}]}
    (error,) = parse_clusters({"entries": [entry]}).errors
    assert "field 'nodes.0.node_name'" in str(error) and "Erlang node name" in str(error)
    with pytest.raises(ValueError):
        riak.check_erlang_node("riak@n1\n")


def test_unknown_kind_is_one_clear_error_naming_the_value_and_the_kinds():
    (error,) = parse_clusters({"entries": [{"kind": "mongo", "name": "m"}]}).errors
    assert error.problems == [
        "field 'kind': value 'mongo' is not one of ['bup', 'cassandra', 'devicedb', 'ebs', 'riak']"
    ]


def test_union_errors_name_the_field_without_the_kind_tag():
    entry = {"kind": "ebs", "name": "e", "volume_ids": ["vol-x"], "typo": 1}
    (error,) = parse_clusters({"entries": [entry]}).errors
    assert any(p.startswith("field 'volume_ids.0': value 'vol-x'") for p in error.problems), error.problems
    assert any(p.startswith("field 'typo': unknown key") for p in error.problems), error.problems
