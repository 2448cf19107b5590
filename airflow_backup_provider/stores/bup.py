"""bup: the command lines to run and parsers of what bup 0.33 prints. Pure: no I/O, no Airflow.

Every command runs as ``env TZ=UTC bup -d BUP_DIR <subcommand> ...``: bup names a save after its
``--date`` in the *local* time zone of the process that lists it, so pinning UTC makes the save of
logical date 2026-11-20T00:00Z always ``2026-11-20-000000``, whoever lists it.

Text formats (checked against bup 0.33.7, see tests/unit/fixtures/bup/):

* ``bup ls --file-type BRANCH``: one name per line, ``2026-11-20-000000/`` per save (``-0``,
  ``-1``... appended when two saves share a second) and ``latest@``.
* ``bup ls -l [--file-type] [-s] PATH``:
  ``[HASH ]MODE USER/GROUP SIZE YYYY-MM-DD HH:MM NAME[ -> TARGET]``. Names are printed raw, so a
  name holding a newline continues on the next line (a line that does not start like an entry).
* ``bup prune-older --pretend``: ``+ BRANCH/SAVE`` (kept) or ``- BRANCH/SAVE`` (removed) per save.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from airflow_backup_provider import names

BUP = "bup"
SAVE_NAME_FORMAT = "%Y-%m-%d-%H%M%S"
SAVE_NAME_RE = re.compile(r"^(\d{4}-\d\d-\d\d-\d{6})(?:-(\d+))?$")
_LONG_RE = re.compile(
    r"^(?:(?P<hash>[0-9a-f]{40}) )?"
    r"(?P<mode>[-dlpscb?][-rwxsStT?]{9}) "
    r"(?P<owner>\S+) +(?P<size>\d+) (?P<mtime>\d{4}-\d\d-\d\d \d\d:\d\d) (?P<name>.*)$"
)
_TYPE_SUFFIX = {"d": "/", "l": "@", "p": "|", "s": "="}
_PRETEND_RE = re.compile(r"^([+-]) (.+)/([^/]+)$")
_RESTORE_RE = re.compile(r"Restoring: (\d+), done\.")


class BupOutputError(ValueError):
    """bup printed something these parsers do not understand."""


def check_branch(name: str) -> str:
    return names.check_bup_branch(name, "bup branch name")


def check_period(value: str) -> str:
    return names.check_bup_period(value, "bup keep period")


def save_name_for(when: datetime | int | float) -> str:
    """The name bup gives (under TZ=UTC) to a save made with ``--date`` = `when`."""
    if isinstance(when, datetime):
        when = when.timestamp()
    return datetime.fromtimestamp(int(when), UTC).strftime(SAVE_NAME_FORMAT)


def epoch(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError(f"date {when!r} has no time zone")
    return int(when.timestamp())


@dataclass(frozen=True)
class Remote:
    """A repository on the backup server, reached by bup over SSH (``-r``)."""

    host: str
    path: str
    user: str | None = None
    port: int = 22

    def spec(self) -> str:
        target = f"{self.user}@{self.host}" if self.user else self.host
        if self.port != 22:
            return f"ssh://{target}:{self.port}{self.path}"
        return f"{target}:{self.path}"


@dataclass(frozen=True)
class PruneOlderKeep:
    """``bup prune-older`` keep periods (at least one is needed)."""

    all_for: str | None = None
    dailies_for: str | None = None
    monthlies_for: str | None = None
    yearlies_for: str | None = None

    def argv(self) -> list[str]:
        words: list[str] = []
        for option, value in (
            ("--keep-all-for", self.all_for),
            ("--keep-dailies-for", self.dailies_for),
            ("--keep-monthlies-for", self.monthlies_for),
            ("--keep-yearlies-for", self.yearlies_for),
        ):
            if value is not None:
                words += [option, check_period(value)]
        if not words:
            raise ValueError("bup prune-older: at least one keep period is needed")
        return words


@dataclass(frozen=True)
class BupCommands:
    """Argv builders for one bup directory (``-d``), optionally talking to a remote repository."""

    bup_dir: str
    remote: Remote | None = None
    env: tuple[str, ...] = ("TZ=UTC",)

    def _base(self, subcommand: str, *, progress: bool = False) -> list[str]:
        # bup reports progress (and its totals) only to a terminal; BUP_FORCE_TTY=2 says stderr is one.
        env = [*self.env, "BUP_FORCE_TTY=2"] if progress else list(self.env)
        return ["env", *env, BUP, "-d", self.bup_dir, subcommand]

    def _remote(self, use_remote: bool) -> list[str]:
        if use_remote and self.remote is not None:
            return ["-r", self.remote.spec()]
        return []

    def init(self, *, remote: bool = True) -> list[str]:
        """Create (or re-initialize, harmlessly) the local bup dir and the remote repository."""
        return self._base("init") + self._remote(remote)

    def index(
        self,
        paths: Sequence[str],
        *,
        excludes: Iterable[str] = (),
        exclude_rx: Iterable[str] = (),
        one_file_system: bool = False,
    ) -> list[str]:
        if not paths:
            raise ValueError("bup index: no paths")
        argv = self._base("index")
        if one_file_system:
            argv.append("-x")
        for path in excludes:
            argv.append(f"--exclude={path}")
        for pattern in exclude_rx:
            argv.append(f"--exclude-rx={pattern}")
        return [*argv, "--", *paths]

    def save(
        self, name: str, date: datetime | int, paths: Sequence[str], *, remote: bool = True, commit: bool = True
    ) -> list[str]:
        if not paths:
            raise ValueError("bup save: no paths")
        seconds = epoch(date) if isinstance(date, datetime) else int(date)
        # no progress output: it makes bup read the whole index twice (to count), ~7% slower
        argv = self._base("save") + self._remote(remote)
        argv += ["-n", check_branch(name), f"--date={seconds}"]
        if commit:
            argv.append("-c")  # prints the commit id: the report's id for this save
        return [*argv, "--", *paths]

    def ls(
        self,
        path: str = "/",
        *,
        remote: bool = True,
        long: bool = False,
        file_type: bool = True,
        hashes: bool = False,
        show_all: bool = False,
    ) -> list[str]:
        argv = self._base("ls") + self._remote(remote)
        if long:
            argv.append("-l")
        if file_type:
            argv.append("--file-type")
        if hashes:
            argv.append("-s")
        if show_all:
            argv.append("-A")
        return [*argv, "--", path]

    def restore(self, path: str, outdir: str, *, remote: bool = True, quiet: bool = False) -> list[str]:
        argv = self._base("restore", progress=True) + self._remote(remote) + ["-C", outdir]
        if quiet:
            argv.append("-q")
        return [*argv, "--", path]

    def prune_older(
        self,
        branches: Sequence[str],
        keep: PruneOlderKeep,
        *,
        wrt: datetime | int | None = None,
        pretend: bool = False,
        gc: bool = True,
    ) -> list[str]:
        """Runs on the backup server (prune-older has no ``-r``)."""
        argv = self._base("prune-older") + ["--unsafe", *keep.argv()]
        if wrt is not None:
            argv.append(f"--wrt={epoch(wrt) if isinstance(wrt, datetime) else int(wrt)}")
        if pretend:
            argv.append("--pretend")
        elif not gc:
            argv.append("--no-gc")
        return [*argv, "--", *(check_branch(b) for b in branches)]

    def rm(self, saves: Sequence[str]) -> list[str]:
        """Remove saves given as ``BRANCH/SAVE`` (on the backup server; data goes with :meth:`gc`)."""
        if not saves:
            raise ValueError("bup rm: no saves")
        for item in saves:
            branch, _, save = item.partition("/")
            check_branch(branch)
            if not SAVE_NAME_RE.match(save):
                raise ValueError(f"bup rm: {item!r} is not BRANCH/YYYY-MM-DD-HHMMSS")
        return self._base("rm") + ["--unsafe", "-v", "--", *saves]

    def gc(self) -> list[str]:
        return self._base("gc") + ["--unsafe", "-v"]

    def split_tree_id(self, path: str) -> list[str]:
        """``bup split --noop -t FILE``: the id of the chunk tree `bup save` makes of a large file,
        computed without writing anything (a restored file checked against its save)."""
        return [*self._base("split"), "--noop", "-t", "--", path]

    def fsck(self, *, generate_par2: bool = False, quick: bool = False, jobs: int = 1) -> list[str]:
        """Verify every pack (git verify-pack, ``--disable-par2``); with `generate_par2`, write recovery
        blocks for the packs lacking them instead (``-g``, which leaves packs that have them unchecked)."""
        argv = self._base("fsck")
        if generate_par2:
            argv.append("-g")
        else:
            argv.append("--disable-par2")
        if quick:
            argv.append("--quick")
        if jobs > 1:
            argv.append(f"-j{jobs}")
        return argv


# ---- parsers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LsEntry:
    name: str
    kind: str = ""  # "dir", "symlink", "fifo", "socket", "file" (known only from -l or --file-type)
    mode: str | None = None
    owner: str | None = None
    size: int | None = None
    mtime: str | None = None
    target: str | None = None
    hash: str | None = None


_KIND_OF_SUFFIX = {"/": "dir", "@": "symlink", "|": "fifo", "=": "socket"}
_KIND_OF_MODE = {"d": "dir", "l": "symlink", "p": "fifo", "s": "socket", "-": "file", "c": "char", "b": "block"}


def _strip_type(name: str, kind: str | None) -> tuple[str, str]:
    """Drop the --file-type indicator: exact when the mode told the kind, else by suffix."""
    if kind is not None:
        suffix = next((s for s, k in _KIND_OF_SUFFIX.items() if k == kind), "")
        if suffix and name.endswith(suffix):
            return name[: -len(suffix)], kind
        return name, kind
    if name and name[-1] in _KIND_OF_SUFFIX:
        return name[:-1], _KIND_OF_SUFFIX[name[-1]]
    return name, "file"


def parse_ls(text: str, *, long: bool = False, file_type: bool = True) -> list[LsEntry]:
    """Entries of ``bup ls`` (one name per line: bup's output when not on a tty)."""
    entries: list[LsEntry] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not long:
        for line in lines:
            if not line:
                continue
            name, kind = _strip_type(line, None) if file_type else (line, "")
            entries.append(LsEntry(name=name, kind=kind))
        return entries
    pending: dict | None = None
    for line in lines:
        match = _LONG_RE.match(line)
        if match is None:
            if pending is None:
                raise BupOutputError(f"bup ls -l: unexpected line {line!r}")
            pending["name"] += "\n" + line  # a newline inside a file name
            continue
        if pending is not None:
            entries.append(_long_entry(pending, file_type))
        pending = match.groupdict()
    if pending is not None:
        entries.append(_long_entry(pending, file_type))
    return entries


def _long_entry(fields: dict, file_type: bool) -> LsEntry:
    mode = fields["mode"]
    kind = _KIND_OF_MODE.get(mode[0], "other")
    name, target = fields["name"], None
    if kind == "symlink" and " -> " in name:
        name, target = name.split(" -> ", 1)
    if file_type:
        name, kind = _strip_type(name, kind)
    return LsEntry(
        name=name,
        kind=kind,
        mode=mode,
        owner=fields["owner"],
        size=int(fields["size"]),
        mtime=fields["mtime"],
        target=target,
        hash=fields["hash"],
    )


@dataclass(frozen=True, order=True)
class Save:
    """One save of a branch, from its name (bup names saves after their ``--date``)."""

    created_at: datetime
    name: str = field(compare=True)

    @property
    def day(self) -> str:
        return self.name[:10]


def parse_save_name(name: str) -> Save | None:
    match = SAVE_NAME_RE.match(name)
    if not match:
        return None
    created = datetime.strptime(match.group(1), SAVE_NAME_FORMAT).replace(tzinfo=UTC)
    return Save(created_at=created, name=name)


def parse_saves(text: str) -> list[Save]:
    """The saves listed by ``bup ls --file-type BRANCH``, oldest first (``latest`` left out)."""
    saves = []
    for entry in parse_ls(text, file_type=True):
        if entry.kind != "dir":
            continue
        save = parse_save_name(entry.name)
        if save is None:
            raise BupOutputError(f"bup ls: {entry.name!r} is not a save name")
        saves.append(save)
    return sorted(saves)


def saves_for_date(saves: Iterable[Save], when: datetime) -> list[Save]:
    """Saves made with ``--date`` = `when` (to the second): the idempotence check of a run."""
    base = save_name_for(when)
    return [s for s in saves if s.name == base or s.name.startswith(base + "-")]


def is_missing_path(stderr: str) -> bool:
    """`bup ls` of a branch or path that does not exist (yet)."""
    return "error: cannot access" in stderr


def is_missing_repository(stderr: str) -> bool:
    return "does not exist (see \"bup help init\")" in stderr


@dataclass(frozen=True)
class PruneAction:
    keep: bool
    branch: str
    save: str

    @property
    def ref(self) -> str:
        return f"{self.branch}/{self.save}"


def parse_prune_pretend(text: str) -> list[PruneAction]:
    actions = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _PRETEND_RE.match(line)
        if not match:
            raise BupOutputError(f"bup prune-older --pretend: unexpected line {line!r}")
        actions.append(PruneAction(keep=match.group(1) == "+", branch=match.group(2), save=match.group(3)))
    return actions


def parse_du_total(stdout: str) -> int | None:
    """The ``total`` line of ``du -s -b -c PATHS`` (GNU coreutils): bytes, tab, ``total``."""
    for line in reversed(stdout.splitlines()):
        size, _, label = line.partition("\t")
        if label == "total" and size.isdigit():
            return int(size)
    return None


def parse_commit_id(stdout: str) -> str:
    """``bup save -c`` prints the new commit's id on stdout."""
    for line in reversed(stdout.splitlines()):
        if names.GIT_SHA1_HEX_RE.match(line.strip()):
            return line.strip()
    raise BupOutputError(f"bup save -c: no commit id in {stdout!r}")


def parse_restore_count(stderr: str) -> int | None:
    matches = _RESTORE_RE.findall(stderr.replace("\r", "\n"))
    return int(matches[-1]) if matches else None
