"""stores/bup.py: argv builders and parsers, on bup 0.33.7's real output (tests/unit/fixtures/bup/)."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_backup_provider.stores import bup as store
from airflow_backup_provider.stores import s3sync

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bup"
BASE = ["env", "TZ=UTC", "bup", "-d", "/var/cache/bup/web1"]
REMOTE = store.Remote(host="backup.internal", path="/srv/bup/web1", user="backup")
CMDS = store.BupCommands(bup_dir="/var/cache/bup/web1", remote=REMOTE)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode()


# ---- builders ----------------------------------------------------------------------------------


def test_remote_spec_forms():
    assert REMOTE.spec() == "backup@backup.internal:/srv/bup/web1"
    assert store.Remote(host="10.0.0.9", path="/r").spec() == "10.0.0.9:/r"
    assert store.Remote(host="b", path="/r", user="u", port=2222).spec() == "ssh://u@b:2222/r"


def test_init_index_save_argv():
    assert CMDS.init() == [*BASE, "init", "-r", "backup@backup.internal:/srv/bup/web1"]
    assert CMDS.index(["/etc", "/var/www"], excludes=["/var/www/cache"], exclude_rx=[r"\.tmp$"]) == [
        *BASE, "index", "--exclude=/var/www/cache", r"--exclude-rx=\.tmp$", "--", "/etc", "/var/www",
    ]
    assert CMDS.index(["/etc"], one_file_system=True)[len(BASE) + 1] == "-x"
    when = datetime(2026, 11, 20, tzinfo=UTC)
    assert CMDS.save("web1", when, ["/etc"]) == [
        "env", "TZ=UTC", "bup", "-d", "/var/cache/bup/web1", "save",
        "-r", "backup@backup.internal:/srv/bup/web1", "-n", "web1", f"--date={int(when.timestamp())}", "-c", "--", "/etc",
    ]


def test_ls_restore_prune_fsck_argv():
    assert CMDS.ls("/web1") == [*BASE, "ls", "-r", REMOTE.spec(), "--file-type", "--", "/web1"]
    assert CMDS.ls("/web1", remote=False, long=True, hashes=True) == [*BASE, "ls", "-l", "--file-type", "-s", "--", "/web1"]
    assert CMDS.restore("/web1/latest/etc", "/tmp/out")[-6:] == ["-r", REMOTE.spec(), "-C", "/tmp/out", "--", "/web1/latest/etc"]
    server = store.BupCommands(bup_dir="/srv/bup/web1")
    keep = store.PruneOlderKeep(all_for="7d", dailies_for="1m", monthlies_for="1y")
    assert server.prune_older(["web1"], keep, wrt=1763596800, pretend=True) == [
        "env", "TZ=UTC", "bup", "-d", "/srv/bup/web1", "prune-older", "--unsafe",
        "--keep-all-for", "7d", "--keep-dailies-for", "1m", "--keep-monthlies-for", "1y",
        "--wrt=1763596800", "--pretend", "--", "web1",
    ]
    assert "--no-gc" in server.prune_older(["web1"], keep, gc=False)
    assert server.rm(["web1/2026-11-20-000000"])[-3:] == ["-v", "--", "web1/2026-11-20-000000"]
    assert server.gc()[-3:] == ["gc", "--unsafe", "-v"]
    assert server.fsck(generate_par2=True)[-2:] == ["fsck", "-g"]
    assert server.fsck()[-2:] == ["fsck", "--disable-par2"]


@pytest.mark.parametrize("bad", ["../x", "a b", "-n", "x;rm", "", "a..b", "x.lock"])
def test_bad_branch_names_refused(bad):
    with pytest.raises(ValueError, match="bup branch name"):
        store.check_branch(bad)


@pytest.mark.parametrize("bad", ["7", "7days", "1 d", "-1d", "forever!"])
def test_bad_periods_refused(bad):
    with pytest.raises(ValueError, match="keep period"):
        store.PruneOlderKeep(all_for=bad).argv()


def test_prune_older_needs_a_period_and_rm_needs_save_names():
    with pytest.raises(ValueError, match="at least one"):
        store.PruneOlderKeep().argv()
    with pytest.raises(ValueError, match="BRANCH/YYYY"):
        store.BupCommands(bup_dir="/r").rm(["web1/latest"])


def test_hostile_paths_stay_one_word():
    hostile = "/srv/$(reboot); rm -rf / #"
    argv = CMDS.index([hostile], exclude_rx=["'; echo pwned"])
    assert shlex.split(shlex.join(argv)) == argv


def test_save_name_for_logical_date_is_utc():
    assert store.save_name_for(datetime(2026, 11, 20, 0, 0, tzinfo=UTC)) == "2026-11-20-000000"
    assert store.save_name_for(1763596800) == "2025-11-20-000000"
    with pytest.raises(ValueError, match="time zone"):
        store.epoch(datetime(2026, 11, 20))


# ---- parsers on real output ----------------------------------------------------------------------


def test_parse_saves_real_listing():
    saves = store.parse_saves(fixture("ls_saves.stdout"))
    assert [s.name for s in saves] == [
        "2025-11-20-000000", "2025-11-21-000000", "2025-11-22-000000-0", "2025-11-22-000000-1",
    ]
    assert saves[0].created_at == datetime(2025, 11, 20, tzinfo=UTC)
    assert saves[-1].day == "2025-11-22"
    same_day = store.saves_for_date(saves, datetime(2025, 11, 22, tzinfo=UTC))
    assert [s.name for s in same_day] == ["2025-11-22-000000-0", "2025-11-22-000000-1"]
    assert store.saves_for_date(saves, datetime(2025, 11, 23, tzinfo=UTC)) == []


def test_parse_ls_long_with_hashes_and_type_indicators():
    entries = {e.name: e for e in store.parse_ls(fixture("ls_long_hashes.stdout"), long=True)}
    assert set(entries) == {"-dash", "a.txt", "arrow -> x", "fifo", "link", "new\nline", "sub", "with space.txt"}
    assert entries["a.txt"].size == 6 and entries["a.txt"].kind == "file"
    assert entries["a.txt"].hash == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert entries["a.txt"].mtime == "2025-11-20 00:00" and entries["a.txt"].owner.count("/") == 1
    assert entries["link"].kind == "symlink" and entries["link"].target == "a.txt"
    assert entries["arrow -> x"].kind == "file" and entries["arrow -> x"].target is None
    assert entries["sub"].kind == "dir" and entries["fifo"].kind == "fifo"


def test_parse_ls_long_plain_matches_type_form():
    plain = store.parse_ls(fixture("ls_long_plain.stdout"), long=True, file_type=False)
    typed = store.parse_ls(fixture("ls_long_hashes.stdout"), long=True)
    assert [(e.name, e.kind, e.size) for e in plain] == [(e.name, e.kind, e.size) for e in typed]


def test_parse_ls_saves_long_and_root():
    long = store.parse_ls(fixture("ls_saves_long.stdout"), long=True)
    assert [e.kind for e in long] == ["dir"] * 4 + ["symlink"]
    assert long[-1].name == "latest" and long[-1].target == "2025-11-22-000000-1"
    assert store.parse_ls(fixture("ls_root.stdout")) == [store.LsEntry(name="web", kind="dir")]


def test_parse_ls_rejects_garbage_first_line():
    with pytest.raises(store.BupOutputError):
        store.parse_ls("not an ls line\n", long=True)
    with pytest.raises(store.BupOutputError):
        store.parse_saves("2025-11-20-000000/\nsomething/\n")


def test_error_texts():
    assert store.is_missing_path(fixture("ls_missing_branch.stderr"))
    assert store.is_missing_repository(fixture("ls_missing_repo.stderr"))
    assert not store.is_missing_repository(fixture("ls_missing_branch.stderr"))


def test_parse_save_output():
    assert store.parse_commit_id(fixture("save_0.stdout")) == fixture("save_0.stdout").strip()
    with pytest.raises(store.BupOutputError):
        store.parse_commit_id("")
    assert store.parse_du_total("6\t/srv/a\n10\t/srv/b\n16\ttotal\n") == 16
    assert store.parse_du_total("du: cannot access '/x'\n") is None


def test_parse_restore_and_prune_pretend():
    assert store.parse_restore_count(fixture("restore.stderr")) == 10
    actions = store.parse_prune_pretend(fixture("prune_pretend.stdout"))
    assert [(a.keep, a.ref) for a in actions] == [
        (True, "web/2025-11-22-000000"), (True, "web/2025-11-22-000000"),
        (False, "web/2025-11-21-000000"), (False, "web/2025-11-20-000000"),
    ]
    with pytest.raises(store.BupOutputError):
        store.parse_prune_pretend("? web/x\n")


# ---- s3 sync plan --------------------------------------------------------------------------------


def test_sync_plan_size_mtime():
    F = s3sync.FileState
    source = {"same": F(3, 10), "touched": F(3, 11), "grown": F(4, 10), "new": F(1, 1), "unknown": F(5, 5)}
    target = {"same": 3, "touched": 3, "grown": 3, "unknown": 5, "gone": 9}
    recorded = {"same": F(3, 10, "aa"), "touched": F(3, 10, "bb"), "grown": F(3, 10)}
    plan = s3sync.plan_sync(source, target, recorded)
    assert sorted(plan.copy) == ["grown", "new", "touched"]
    assert plan.unchanged == ["same"] and plan.need_metadata == ["unknown"] and plan.delete == []
    assert s3sync.plan_sync(source, target, recorded, delete=True).delete == ["gone"]
    s3sync.decide_with_metadata(plan, "unknown", source["unknown"], F(5, 5), "size_mtime")
    assert "unknown" in plan.unchanged


def test_sync_plan_checksum_ignores_mtime():
    F = s3sync.FileState
    plan = s3sync.plan_sync(
        {"a": F(3, 99, "h1"), "b": F(3, 10, "h2")}, {"a": 3, "b": 3}, {"a": F(3, 10, "h1"), "b": F(3, 10, "zz")},
        compare="checksum",
    )
    assert plan.unchanged == ["a"] and plan.copy == ["b"]


def test_manifest_round_trip_and_paths():
    F = s3sync.FileState
    files = {"objects/pack/p.pack": F(10, 123, "ab"), "refs/heads/web": F(41, 5, "cd")}
    assert s3sync.manifest_loads(s3sync.manifest_dumps(files)) == files
    with pytest.raises(ValueError):
        s3sync.manifest_loads(b'{"version": 2}')
    assert s3sync.key_for("bup/web1/", "a/b") == "bup/web1/a/b"
    assert s3sync.rel_for("bup/web1", "bup/web1/a/b") == "a/b" and s3sync.rel_for("bup/web1", "bup/web10/x") is None
    with pytest.raises(ValueError, match="unsafe"):
        s3sync.check_rel_paths(["../etc/passwd"])
    assert s3sync.progress_line(1, 2, 1024, 2048, 1.0) == "1/2 files, 1.0 KiB/2.0 KiB, 1.0 KiB/s"


def test_sync_refuses_to_wipe_the_target_from_an_empty_source():
    F = s3sync.FileState
    plan = s3sync.plan_sync({}, {"a": 1, "b": 2}, {}, delete=True)
    with pytest.raises(ValueError, match="refusing to delete all 2"):
        s3sync.refuse_wipe(plan, 0, "s3://b/p")
    s3sync.refuse_wipe(s3sync.plan_sync({}, {"a": 1}, {}, delete=False), 0, "s3://b/p")
    s3sync.refuse_wipe(s3sync.plan_sync({"a": F(1, 1)}, {"a": 1, "b": 2}, {}, delete=True), 1, "s3://b/p")
