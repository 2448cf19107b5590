"""The clusters file: validation names entry, field and value; one bad entry hides nothing."""

from datetime import timedelta

import pytest

from airflow_backup_provider.config import (
    ClustersFileError,
    EbsPolicy,
    parse_clusters,
    parse_duration,
)


def ebs(name="web", **extra):
    return {"kind": "ebs", "name": name, "volume_ids": ["vol-0123456789abcdef1"], **extra}


def test_defaults_apply_and_entries_override():
    clusters = parse_clusters(
        {
            "defaults": {"alert_emails": ["a@example.com"], "retries": 4, "schedule": "0 3 * * *"},
            "entries": [ebs("one"), ebs("two", retries=1, schedule="@weekly")],
        }
    )
    one, two = clusters.entries
    assert isinstance(one, EbsPolicy)
    assert (one.retries, one.schedule, one.alert_emails) == (4, "0 3 * * *", ["a@example.com"])
    assert (two.retries, two.schedule) == (1, "@weekly")
    assert clusters.errors == []


def test_unknown_key_is_an_error_naming_entry_field_and_value():
    clusters = parse_clusters({"entries": [ebs("web", retires=3)]})
    assert clusters.entries == []
    (error,) = clusters.errors
    text = str(error)
    assert "'web'" in text and "'retires'" in text and "3" in text and "unknown key" in text


def test_one_bad_entry_does_not_hide_the_others():
    clusters = parse_clusters(
        {"entries": [ebs("good1"), ebs("bad", retries="many"), ebs("good2"), {"kind": "oracle", "name": "x"}]}
    )
    assert [e.name for e in clusters.entries] == ["good1", "good2"]
    assert len(clusters.errors) == 2
    bad, unknown_kind = (str(e) for e in clusters.errors)
    assert "'bad'" in bad and "'retries'" in bad and "'many'" in bad
    assert "'kind'" in unknown_kind and "'oracle'" in unknown_kind


@pytest.mark.parametrize(
    "hostile",
    ["10.0.0.1; rm -rf /", "$(reboot)", "host name", "`id`", "a'b", "-oProxyCommand=sh", ""],
)
def test_hostile_host_names_are_refused(hostile):
    clusters = parse_clusters(
        {"entries": [{"kind": "bup", "name": "h", "host": hostile, "paths": ["/etc"]}]}
    )
    (error,) = clusters.errors
    assert "'host'" in str(error) and repr(hostile) in str(error)


@pytest.mark.parametrize("name", ["a/b", "../x", "x y", "x;y", "-x", "é"])
def test_hostile_entry_names_are_refused(name):
    (error,) = parse_clusters({"entries": [ebs(name)]}).errors
    assert "'name'" in str(error) and repr(name) in str(error)


def test_paths_must_be_absolute_and_plain():
    (error,) = parse_clusters(
        {"entries": [{"kind": "bup", "name": "h", "host": "db1", "paths": ["/srv/../etc", "/ok"]}]}
    ).errors
    assert "'paths.0'" in str(error) and "'/srv/../etc'" in str(error)


def test_duplicate_names_of_one_kind_are_refused():
    clusters = parse_clusters({"entries": [ebs("web"), ebs("web")]})
    assert len(clusters.entries) == 1
    assert "already used" in str(clusters.errors[0])


def test_bad_defaults_fail_the_whole_file_with_the_field_named():
    with pytest.raises(ClustersFileError, match=r"defaults: field 'alert_emails.0': value 'not-an-address'"):
        parse_clusters({"defaults": {"alert_emails": ["not-an-address"]}, "entries": []})


def test_unknown_top_level_key_is_refused():
    with pytest.raises(ClustersFileError, match="clusterz"):
        parse_clusters({"clusterz": []})


def test_durations():
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration(30) == timedelta(seconds=30)
    with pytest.raises(ValueError):
        parse_duration("soon")
    (error,) = parse_clusters({"entries": [ebs("w", retry_delay="soon")]}).errors
    assert "'retry_delay'" in str(error) and "'soon'" in str(error)


def test_bad_schedule_is_refused():
    (error,) = parse_clusters({"entries": [ebs("w", schedule="daily please")]}).errors
    assert "'schedule'" in str(error)


def test_file_not_found_and_not_yaml(tmp_path):
    from airflow_backup_provider.config import load_clusters_file

    with pytest.raises(ClustersFileError, match="cannot be read"):
        load_clusters_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: [unclosed")
    with pytest.raises(ClustersFileError, match="not valid YAML"):
        load_clusters_file(bad)


def test_env_var_points_elsewhere(tmp_path, monkeypatch):
    from airflow_backup_provider.config import load_clusters_file

    path = tmp_path / "c.yaml"
    path.write_text("entries:\n  - {kind: ebs, name: from-env, volume_ids: [vol-0123456789abcdef9]}\n")
    monkeypatch.setenv("BACKUP_CLUSTERS_FILE", str(path))
    assert [e.name for e in load_clusters_file().entries] == ["from-env"]


def test_a_password_in_a_dump_command_is_refused_without_being_echoed():
    secret = "hunter2-very-secret"
    (error,) = parse_clusters(
        {
            "entries": [
                {
                    "kind": "bup", "name": "db", "host": "db1", "paths": ["/srv"],
                    "server": {"host": "backup1", "repo_dir": "/srv/bup"},
                    "dumps": [{"name": "app", "argv": ["mysqldump", f"--password={secret}", "app"], "output": "app.sql"}],
                }
            ]
        }
    ).errors
    assert "carries a password" in str(error) and "argv" in str(error)
    assert secret not in str(error)


def _dump_errors(argv: list[str]) -> list:
    return parse_clusters(
        {
            "entries": [
                {
                    "kind": "bup", "name": "db", "host": "db1", "paths": ["/srv"], "staging_dir": "/var/staging",
                    "server": {"host": "backup1", "repo_dir": "/srv/bup"},
                    "dumps": [{"name": "app", "argv": argv, "output": "app.sql"}],
                }
            ]
        }
    ).errors


@pytest.mark.parametrize(
    ("argv", "position"),
    [
        (["mysqldump", "-phunter2-very-secret", "app"], 1),
        (["/usr/bin/mariadb-dump", "-u", "backup", "-phunter2-very-secret", "app"], 3),
        (["some-dump", "--password", "hunter2-very-secret"], 2),
        (["env", "PGPASSWORD=hunter2-very-secret", "pg_dump", "app"], 1),
        (["env", "MYSQL_PWD=hunter2-very-secret", "mysqldump", "app"], 1),
        (["dumper", "--db-pass=hunter2-very-secret"], 1),
        (["pg_dump", "postgresql://backup:hunter2-very-secret@db1/app"], 1),
    ],
)
def test_every_usual_way_of_passing_a_password_is_refused(argv, position):
    (error,) = _dump_errors(argv)
    assert f"argument #{position} carries a password" in str(error), str(error)
    assert "hunter2-very-secret" not in str(error)


@pytest.mark.parametrize(
    "argv",
    [
        ["pg_dump", "-p", "5432", "-U", "backup", "app"],  # pg_dump's -p is the port
        ["mysqldump", "--single-transaction", "-u", "backup", "-P", "3306", "shop"],
        ["sqlite3", "/var/lib/app/app.db", ".dump"],
        ["mysqldump", "-p", "--", "shop"],  # -p alone: the password comes from MYSQL_PWD / a prompt
    ],
)
def test_ordinary_dump_commands_pass(argv):
    assert _dump_errors(argv) == []
