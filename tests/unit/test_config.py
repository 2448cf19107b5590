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


@pytest.mark.parametrize(
    "field, value",
    [
        ("host", "web1\n"),
        ("name", "web1\n"),
        ("paths", ["/etc\n"]),
        ("bup_dir", "/var/backup/bup\n"),
    ],
)
def test_a_trailing_newline_is_no_part_of_a_valid_value(field, value):
    """`$` in a pattern lets one trailing newline through (re.match); every check ends at the very end."""
    valid = {"kind": "bup", "name": "h", "host": "web1", "paths": ["/etc"],
             "server": {"host": "backup.internal", "repo_dir": "/srv/bup/h"}}
    assert parse_clusters({"entries": [valid]}).errors == []
    (error,) = parse_clusters({"entries": [{**valid, field: value}]}).errors
    assert f"field '{field}" in str(error) and "is required" not in str(error)


@pytest.mark.parametrize(
    "check, value",
    [("validate_host", "node1\n"), ("validate_keyspace", "shop\n"), ("validate_table", "orders\n"),
     ("validate_tag", "t1\n"), ("validate_day", "20261120\n"), ("validate_abs_path", "/tmp/x\n")],
)
def test_cassandra_names_refuse_a_trailing_newline(check, value):
    from airflow_backup_provider.stores import cassandra_layout

    with pytest.raises(cassandra_layout.CassandraNameError):
        getattr(cassandra_layout, check)(value)


def test_paths_must_be_absolute_and_plain():
    (error,) = parse_clusters(
        {"entries": [{"kind": "bup", "name": "h", "host": "db1", "paths": ["/srv/../etc", "/ok"]}]}
    ).errors
    assert "'paths.0'" in str(error) and "'/srv/../etc'" in str(error)


def test_duplicate_names_of_one_kind_are_refused():
    clusters = parse_clusters({"entries": [ebs("web"), ebs("web")]})
    assert len(clusters.entries) == 1
    assert "already used" in str(clusters.errors[0])


def test_a_bad_default_counts_against_every_entry_that_uses_it_and_only_those():
    clusters = parse_clusters(
        {
            "defaults": {"alert_emails": ["not-an-address"], "retries": 3},
            "entries": [ebs("uses"), ebs("overrides", alert_emails=["oncall@example.com"])],
        }
    )
    assert [(e.name, e.retries) for e in clusters.entries] == [("overrides", 3)]  # the valid defaults still apply
    (error,) = clusters.errors
    assert error.name == "uses"
    assert "defaults: field 'alert_emails.0': value 'not-an-address'" in str(error)
    (listed,) = clusters.defaults_errors  # listed even when no entry uses it
    assert "'alert_emails.0'" in listed and "'not-an-address'" in listed


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


# --- hostile values: every one stays a validation error of its entry ---------------------------

import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import typing  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from airflow_backup_provider.config import Defaults, Duration, load_clusters_file  # noqa: E402
from airflow_backup_provider.kinds import ENTRY_MODELS  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "dags" / "clusters.yaml"


def example_entry(kind: str) -> dict:
    """A valid entry of `kind`: the example clusters file's."""
    for entry in yaml.safe_load(EXAMPLE.read_text())["entries"]:
        if entry["kind"] == kind:
            return entry
    raise AssertionError(f"no {kind} entry in {EXAMPLE}")


def _is_duration(annotation) -> bool:
    return annotation is Duration or any(_is_duration(a) for a in typing.get_args(annotation))


# (kind, dotted path) of every duration and schedule field; the top-level ones are found on the
# models, so a field added later is covered too
NESTED = [("ebs", "retention.keep_within"), ("bup", "dumps.0.timeout"), ("bup", "s3_sync.schedule")]
DURATION_FIELDS = [
    (kind, name) for kind, model in ENTRY_MODELS.items() for name, f in model.model_fields.items() if _is_duration(f.annotation)
] + [NESTED[0], NESTED[1]]
SCHEDULE_FIELDS = [
    (kind, name) for kind, model in ENTRY_MODELS.items() for name in model.model_fields if name.endswith("schedule")
] + [NESTED[2]]


def with_value(entry: dict, path: str, value) -> dict:
    entry = yaml.safe_load(yaml.safe_dump(entry))  # a deep copy
    *parents, last = path.split(".")
    target = entry
    for part in parents:
        target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
    target[last] = value
    return entry


def test_the_field_lists_cover_what_they_should():
    assert {("ebs", "retry_delay"), ("ebs", "snapshot_timeout"), ("riak", "node_down_retry_delay")} <= set(DURATION_FIELDS)
    assert {("ebs", "schedule"), ("bup", "fsck_schedule"), ("bup", "s3_sync.schedule")} <= set(SCHEDULE_FIELDS)


def assert_only_that_entry_fails(kind: str, path: str, value, *, accepted=None) -> None:
    """parse_clusters never raises for one bad value; the other entry still loads; an error names
    the field and quotes the value (bounded)."""
    bad = with_value({**example_entry(kind), "name": "hostile"}, path, value)
    clusters = parse_clusters({"entries": [ebs("good"), bad]})
    assert "good" in [e.name for e in clusters.entries]
    if not clusters.errors:
        assert accepted is None or accepted(value), f"{path}={value!r} was accepted"
        return
    (error,) = clusters.errors
    text = str(error)
    assert error.name == "hostile" and f"'{path}'" in text, text
    assert len(text) < 2000, text


@pytest.mark.parametrize(("kind", "path"), DURATION_FIELDS)
@pytest.mark.parametrize("value", [10**20, "99999999999d", 99999999999.5, math.inf, -math.inf, math.nan, -1, "-5m"])
def test_a_huge_or_impossible_duration_is_an_error_of_its_entry(kind, path, value):
    bad = with_value({**example_entry(kind), "name": "hostile"}, path, value)
    clusters = parse_clusters({"entries": [ebs("good"), bad]})
    assert [e.name for e in clusters.entries] == ["good"]
    (error,) = clusters.errors
    assert f"field '{path}': value {value!r}" in str(error), str(error)


def test_duration_bounds_follow_the_field():
    ok = parse_clusters({"entries": [ebs("w", retry_delay="24h", retention={"keep_within": "3650d"})]})
    assert not ok.errors and ok.entries[0].retry_delay == timedelta(hours=24)
    (error,) = parse_clusters({"entries": [ebs("w", retry_delay="25h")]}).errors
    assert "field 'retry_delay': value '25h' must be at most 1d (Airflow's max_task_retry_delay)" in str(error)
    (error,) = parse_clusters({"entries": [ebs("w", retention={"keep_within": "36526d"})]}).errors
    assert "'retention.keep_within': value '36526d' must be at most 36525d" in str(error)


def test_a_huge_default_counts_against_the_entries_and_the_loader_does_not_crash():
    clusters = parse_clusters(
        {"defaults": {"retry_delay": 10**20}, "entries": [ebs("uses"), ebs("overrides", retry_delay="1m")]}
    )
    assert [e.name for e in clusters.entries] == ["overrides"]
    (error,) = clusters.errors
    assert "defaults: field 'retry_delay': value 100000000000000000000 must be at most" in str(error)


@pytest.mark.parametrize(("kind", "path"), SCHEDULE_FIELDS)
@pytest.mark.parametrize("value", ["@every", "@hourlyy", "61 * * * *", "0 0 30 2 *", "daily please", ""])
def test_a_schedule_airflow_refuses_is_an_error_naming_entry_field_and_value(kind, path, value):
    bad = with_value({**example_entry(kind), "name": "hostile"}, path, value)
    clusters = parse_clusters({"entries": [ebs("good"), bad]})
    assert [e.name for e in clusters.entries] == ["good"]
    (error,) = clusters.errors
    assert f"entry #1 'hostile' (kind '{kind}'): field '{path}': value {value!r} is not a schedule Airflow accepts" in str(
        error
    ), str(error)


@pytest.mark.parametrize("value", ["@daily", "@weekly", "@once", "30 2 * * *", "0 3 * * 6", "*/15 * * * *", None])
def test_schedules_airflow_accepts_pass(value):
    clusters = parse_clusters({"entries": [ebs("w", schedule=value)]})
    assert clusters.errors == [] and clusters.entries[0].schedule == value


def test_a_bad_default_schedule_names_the_default():
    clusters = parse_clusters({"defaults": {"schedule": "@every"}, "entries": [ebs("uses"), ebs("own", schedule="@daily")]})
    assert [e.name for e in clusters.entries] == ["own"]
    assert "defaults: field 'schedule': value '@every' is not a schedule Airflow accepts" in str(clusters.errors[0])


HOSTILE = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=10**4400, max_value=10**4500),  # beyond Python's int-to-str limit
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.sampled_from("0123456789smhdw @*/,-;|&$`'\"\\\n\r\t\x00 ()<>!#"), max_size=40),
    st.text(max_size=20),
    st.text(min_size=5000, max_size=6000, alphabet="x\n"),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
)
ALL_FIELDS = sorted(set(DURATION_FIELDS + SCHEDULE_FIELDS))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(ALL_FIELDS), value=HOSTILE)
def test_hostile_values_never_escape_as_anything_but_a_validation_error(field, value):
    kind, path = field
    assert_only_that_entry_fails(kind, path, value)


DEFAULT_FIELDS = sorted(name for name, f in Defaults.model_fields.items() if _is_duration(f.annotation) or name == "schedule")


@settings(max_examples=100, deadline=None)
@given(field=st.sampled_from(DEFAULT_FIELDS), value=HOSTILE)
def test_hostile_defaults_never_escape(field, value):
    own = {field: "@daily" if field == "schedule" else "1m"}
    clusters = parse_clusters({"defaults": {field: value}, "entries": [ebs("uses"), ebs("own", **own)]})
    assert "own" in [e.name for e in clusters.entries]
    for error in clusters.errors:
        assert error.name == "uses" and f"defaults: field '{field}'" in str(error) and len(str(error)) < 2000


# --- the YAML itself: bombs, repeated keys, values Python cannot build ---------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clusters.yaml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """\
  - kind: ebs
    name: good
    volume_ids: [vol-0123456789abcdef1]
"""
# billion laughs: 9 lines that expand to 9**9 (387 million) strings
LAUGHS = "".join(
    f"      l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9 if level else ["lol"] * 9) + "]\n"
    for level in range(9)
)
BOMB_FILE = (
    "entries:\n"
    + GOOD
    + "  - kind: ebs\n    name: bomb-in-tags\n    volume_ids: [vol-0123456789abcdef1]\n    tags:\n"
    + LAUGHS
    + "  - kind: ebs\n    name: bomb-quoted\n    volume_ids: [vol-0123456789abcdef1]\n    retries: *l8\n"
)
BOMB_CHILD = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))  # a regression dies of MemoryError
from airflow_backup_provider.config import load_clusters_file
started = time.monotonic()
clusters = load_clusters_file(sys.argv[1])
print(json.dumps({"seconds": time.monotonic() - started, "entries": [e.name for e in clusters.entries],
                  "errors": [str(e) for e in clusters.errors]}))
"""


def test_a_yaml_bomb_in_one_entry_is_refused_fast_and_hides_nothing(tmp_path):
    path = write(tmp_path, BOMB_FILE)
    # a child with a memory limit and a timeout: a regression fails here instead of hanging the suite
    done = subprocess.run(
        [sys.executable, "-c", BOMB_CHILD, str(path)], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = yaml.safe_load(done.stdout.strip().splitlines()[-1])
    assert report["seconds"] < 10, report["seconds"]
    assert report["entries"] == ["good"]
    in_tags, quoted = report["errors"]
    assert "'bomb-in-tags'" in in_tags and "field 'tags'" in in_tags and "expands to more than" in in_tags
    assert "'bomb-quoted'" in quoted and "field 'retries'" in quoted and "expands to more than" in quoted
    assert max(len(in_tags), len(quoted)) < 1000


def test_a_value_that_contains_itself_is_an_error_of_its_entry(tmp_path):
    path = write(tmp_path, "entries:\n" + GOOD + "  - {kind: ebs, name: loop, volume_ids: &v [vol-0123456789abcdef1, *v]}\n")
    clusters = load_clusters_file(path)
    assert [e.name for e in clusters.entries] == ["good"]
    assert "field 'volume_ids': contains itself" in str(clusters.errors[0])


def test_ordinary_aliases_and_merge_keys_still_work(tmp_path):
    path = write(
        tmp_path,
        """\
        defaults:
          alert_emails: &team [oncall@example.com]
        entries:
          - &base {kind: ebs, name: one, volume_ids: [vol-0123456789abcdef1], retries: 1}
          - <<: *base
            name: two
            retries: 4
            alert_emails: *team
        """,
    )
    clusters = load_clusters_file(path)
    assert clusters.errors == []
    assert [(e.name, e.retries) for e in clusters.entries] == [("one", 1), ("two", 4)]


def test_a_key_written_twice_is_an_error_naming_key_and_lines(tmp_path):
    path = write(
        tmp_path,
        "entries:\n" + GOOD + """\
  - kind: ebs
    name: twice
    volume_ids: [vol-0123456789abcdef1]
    retries: 1
    retries: 5
  - kind: ebs
    name: nested
    volume_ids: [vol-0123456789abcdef1]
    retention: {keep_last: 3, keep_last: 30}
""",
    )
    clusters = load_clusters_file(path)
    assert [e.name for e in clusters.entries] == ["good"]
    twice, nested = (str(e) for e in clusters.errors)
    assert "'twice'" in twice and "key 'retries' is written twice in one mapping (lines 8 and 9)" in twice
    assert "'nested'" in nested and "field 'retention': key 'keep_last' is written twice" in nested


def test_a_key_written_twice_in_defaults_or_at_the_top(tmp_path):
    path = write(tmp_path, "defaults:\n  retries: 1\n  retries: 9\nentries:\n" + GOOD + "  - {kind: ebs, name: own, retries: 2, volume_ids: [vol-0123456789abcdef2]}\n")
    clusters = load_clusters_file(path)
    assert [e.name for e in clusters.entries] == ["own"]
    assert "defaults: key 'retries' is written twice in one mapping (lines 2 and 3)" in str(clusters.errors[0])
    # two `entries:` would silently drop the first list: the whole file is refused
    path = write(tmp_path, "entries:\n" + GOOD + "entries: []\n")
    with pytest.raises(ClustersFileError, match=r"key 'entries' is written twice in one mapping \(lines 1 and 5\)"):
        load_clusters_file(path)


def test_numbers_and_dates_python_cannot_build_are_errors_of_their_entry(tmp_path):
    path = write(
        tmp_path,
        "entries:\n" + GOOD + "  - {kind: ebs, name: date, start_date: 2026-13-45, volume_ids: [vol-0123456789abcdef2]}\n"
        f"  - {{kind: ebs, name: digits, retries: {'9' * 5000}, volume_ids: [vol-0123456789abcdef3]}}\n",
    )
    clusters = load_clusters_file(path)
    assert [e.name for e in clusters.entries] == ["good"]
    date, digits = (str(e) for e in clusters.errors)
    assert "field 'start_date': value '2026-13-45'" in date
    assert "field 'retries': value '99999" in digits and "…" in digits and len(digits) < 1000


def test_deep_nesting_is_one_clear_file_error(tmp_path):
    path = write(tmp_path, "entries: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ClustersFileError, match="nests too deeply"):
        load_clusters_file(path)


def test_an_error_quotes_at_most_a_bounded_part_of_the_value():
    long_value = "x" * 100_000
    (error,) = parse_clusters({"entries": [ebs("w", owner=["a"], retries=long_value)]}).errors
    assert "'retries': value 'xxxx" in str(error) and "…" in str(error)
    assert len(str(error)) < 1000
    many = parse_clusters({"entries": [ebs("w", volume_ids=[f"bad-{i}" for i in range(1000)])]}).errors
    assert "and 980 more problems" in str(many[0]) and len(str(many[0])) < 20_000
