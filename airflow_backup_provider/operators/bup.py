"""bup operators: pre-backup dumps, save, restore, prune and fsck.

Each one builds argv lists with :mod:`airflow_backup_provider.stores.bup` and runs them with
:class:`~airflow_backup_provider.hooks.bup.BupNodeHook` on the host being backed up (``save``,
``restore``, dumps) or on the backup server (``prune``, ``fsck``). The repository lives on the
backup server; the host's bup reaches it with ``-r`` over SSH.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from airflow.sdk import Connection, conf
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from airflow_backup_provider import dates, names
from airflow_backup_provider.config import RetentionPolicy
from airflow_backup_provider.hooks.bup import BupNodeHook, dump_argv, env_lines
from airflow_backup_provider.operators.base import BackupOperator
from airflow_backup_provider.operators.remote_job import RemoteJobMixin
from airflow_backup_provider.operators.retention import RetentionGroup, RetentionOperator, RetentionRun
from airflow_backup_provider.retention import BackupItem, Decision, RetentionPlan, planned_backup
from airflow_backup_provider.stores import bup as store
from airflow_backup_provider.stores.paths import UnsafePathError, check_outside, parse_nul_list, realpath_argv


class BupError(AirflowException):
    """A bup step failed; the message names the host, the command and bup's own words."""


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


class BupNodeOperator(BackupOperator):
    """Common parts: where the commands run, and the bup directory / remote repository."""

    ui_color = "#e3f1e6"

    def __init__(
        self,
        *,
        host: str,
        bup_dir: str,
        ssh_conn_id: str | None = "backup_ssh",
        port: int = 22,
        sudo_user: str | None = None,
        remote: store.Remote | None = None,
        command_timeout: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.port = port
        self.bup_dir = bup_dir
        self.ssh_conn_id = ssh_conn_id
        self.sudo_user = sudo_user
        self.remote = remote
        self.command_timeout = _seconds(command_timeout)

    @property
    def commands(self) -> store.BupCommands:
        return store.BupCommands(bup_dir=self.bup_dir, remote=self.remote)

    def node_hook(self) -> BupNodeHook:
        return self.remote_hook(self.host, self.port, hook_class=BupNodeHook)

    def _check(self, result, what: str):
        if not result.ok:
            detail = (result.stderr.strip() or result.stdout.strip())[-2000:]
            raise BupError(f"{what} on {result.host} failed (exit code {result.exit_code}): {result.command_line}\n{detail}")
        return result


def list_saves(hook: BupNodeHook, commands: store.BupCommands, branch: str, *, remote: bool) -> list[store.Save] | None:
    """The saves of `branch`, oldest first; ``None`` when the repository does not exist yet."""
    result = hook.run(commands.ls(f"/{branch}", remote=remote), timeout=600)
    if result.ok:
        return store.parse_saves(result.stdout)
    if store.is_missing_repository(result.stderr):
        return None
    if store.is_missing_path(result.stderr):
        return []
    raise BupError(
        f"bup ls /{branch} on {result.host} failed (exit code {result.exit_code}): {result.stderr.strip()[-2000:]}"
    )


class BupDumpOperator(BupNodeOperator):
    """
    Run the pre-backup dumps on the host, each into its own file of the staging folder.

    :param dumps: ``[{"name", "argv", "output", "env_from_connection", "timeout"}]``; the command's
        stdout becomes ``staging_dir/output``. Every dump runs; if any fails, the task fails
        naming each failed dump (no save follows).
    """

    def __init__(self, *, staging_dir: str, dumps: Sequence[Mapping[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.staging_dir = staging_dir
        self.dumps = [dict(d) for d in dumps]

    @staticmethod
    def resolve_env(sources: Mapping[str, str]) -> dict[str, str]:
        """``{VAR: "conn_id.field"}`` -> values from Airflow connections (masked in logs)."""
        from airflow.sdk.log import mask_secret

        env: dict[str, str] = {}
        for name, source in sources.items():
            conn_id, _, field = source.partition(".")
            conn = Connection.get(conn_id)
            if field.startswith("extra."):
                value = conn.extra_dejson.get(field.removeprefix("extra."))
            else:
                value = getattr(conn, field, None)
            if value is None or value == "":
                raise BupError(f"dump environment {name}: connection {conn_id!r} has no {field}")
            env[name] = str(value)
            mask_secret(env[name])
        return env

    def execute(self, context: Any) -> list[dict[str, Any]]:
        dry_run = self.is_dry_run(context)
        produced, failures = [], []
        with self.node_hook() as hook:
            for dump in self.dumps:
                output = posixpath.join(self.staging_dir, dump["output"])
                argv = dump_argv(output, dump["argv"])
                if dry_run:
                    self.log.info("dry run: would dump %s: %s > %s", dump["name"], " ".join(dump["argv"]), output)
                    continue
                env = self.resolve_env(dump.get("env_from_connection") or {})
                result = hook.run_with_input(argv, env_lines(env), timeout=_seconds(dump.get("timeout")))
                if not result.ok:
                    tail = result.stderr.strip()[-1000:]
                    self.log.error("dump %s failed with exit code %s: %s", dump["name"], result.exit_code, tail)
                    failures.append(f"{dump['name']} (exit code {result.exit_code}: {tail})")
                    continue
                size = hook.run(["stat", "-c", "%s", "--", output], timeout=60)
                self._check(size, f"stat {output}")
                # staged: an input of the save, which the catalog leaves out (the save counts these bytes)
                produced.append({"id": f"{dump['name']}:{output}", "size": int(size.stdout.strip()), "staged": True})
                self.log.info("dump %s -> %s (%s bytes)", dump["name"], output, produced[-1]["size"])
        if failures:
            raise BupError(f"{len(failures)} of {len(self.dumps)} dump(s) failed on {self.host}: " + "; ".join(failures))
        self.record_outcome(
            context, status="dry_run" if dry_run else "done", node=self.host, produced=produced,
            detail=f"{len(self.dumps)} dump(s) into {self.staging_dir}",
        )
        return produced


class BupSaveOperator(RemoteJobMixin, BupNodeOperator):
    """
    ``bup index`` then ``bup save -n BRANCH --date=<logical date> -r <server>`` on the host.

    One logical date makes at most one save: when the branch already holds a save for the run's
    logical date (a retry, a cleared task, a second trigger), nothing is indexed or saved. The save
    runs as a detached job (:mod:`~airflow_backup_provider.operators.remote_job`): with
    ``deferrable`` the task waits in the triggerer; a retry finds a save still running from an
    earlier try and waits for it instead of starting a second one on the same repository.
    """

    template_fields = ("paths",)

    def __init__(
        self,
        *,
        branch: str,
        paths: Sequence[str],
        excludes: Sequence[str] = (),
        exclude_rx: Sequence[str] = (),
        one_file_system: bool = False,
        server: Mapping[str, Any] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.branch = store.check_branch(branch)
        self.paths = list(paths)
        self.excludes = list(excludes)
        self.exclude_rx = list(exclude_rx)
        self.one_file_system = one_file_system
        # with the server's SSH access, the check for an existing save runs there directly
        # (one bup process) instead of `bup ls -r` from the host (two, and a nested ssh)
        self.server = dict(server or {})

    def _list_saves(self, hook: BupNodeHook) -> list[store.Save] | None:
        if not self.server:
            return list_saves(hook, self.commands, self.branch, remote=True)
        server = BupNodeHook(
            ssh_conn_id=self.server.get("ssh_conn_id"), host=self.server["host"],
            port=self.server.get("port", 22), sudo_user=self.server.get("sudo_user"),
        )
        with server:
            return list_saves(server, store.BupCommands(bup_dir=self.server["bup_dir"]), self.branch, remote=False)

    def execute(self, context: Any) -> dict[str, Any]:
        dry_run = self.is_dry_run(context)
        when = self.run_date(context)
        commands = self.commands
        save = commands.save(self.branch, when, self.paths)
        index = commands.index(
            self.paths, excludes=self.excludes, exclude_rx=self.exclude_rx, one_file_system=self.one_file_system
        )
        with self.node_hook() as hook, ThreadPoolExecutor(2) as pool:
            if not hook.is_local:
                hook.get_conn()  # connect once, before threads share the connection
            # an earlier try's save still runs: wait for it (an index now would race it)
            running = hook.job_status(self.remote_job(context, hook, save, step="save"), max_bytes=0).state
            if running not in ("running", "starting"):
                skipped = self._before_save(context, hook, pool, when, index, dry_run)
                if skipped:
                    return skipped
            # the size of what is backed up (apparent bytes of the paths), for the report; it
            # runs beside the save, on its own channel
            du = pool.submit(hook.run, ["du", "-s", "-b", "-c", "--", *self.paths], timeout=self.command_timeout)
            # bup dates the save --date=logical date; only this report keeps when it really ran
            taken_at = dates.now_utc()
            job = self.start_remote_job(context, hook, save, step="save")
            du = du.result()
            size = store.parse_du_total(du.stdout) if du.ok else None
            return self.wait_remote_job(
                context, hook, job, method_name="execute_complete", timeout=self.command_timeout,
                kwargs={"taken_at": taken_at.isoformat(), "size": size},
            )

    def _before_save(
        self, context: Any, hook: BupNodeHook, pool: ThreadPoolExecutor, when: datetime, index: list[str], dry_run: bool
    ) -> dict[str, Any] | None:
        """The check for an existing save (its result when there is one), ``bup init`` if needed, the index."""
        commands = self.commands
        save_name = store.save_name_for(when)
        # The check asks the server; the index is local work on the host. They are
        # independent, so they overlap. An index made for a save that then is skipped only
        # refreshes the host's own index, which the next save uses anyway.
        check = pool.submit(self._list_saves, hook)
        indexed = None if dry_run else hook.run(index, timeout=self.command_timeout)
        saves = check.result()
        existing = store.saves_for_date(saves or [], when)
        if existing:
            detail = f"{self.branch}/{existing[0].name} already exists for {when.isoformat()}"
            self.log.info("skipping: %s", detail)
            self.record_outcome(context, status="skipped", node=self.host, detail=detail)
            return {"save": existing[0].name, "skipped": True}
        if dry_run:
            detail = f"would save {', '.join(self.paths)} as {self.branch}/{save_name}"
            self.log.info("dry run: %s", detail)
            self.record_outcome(context, status="dry_run", node=self.host, detail=detail)
            # skipped, not succeeded: a success would emit the repository Asset and start a
            # real S3 sync of a backup that was never made
            raise AirflowSkipException(f"dry run: {detail}")
        if saves is None:
            self.log.info("repository %s does not exist yet: bup init", self.remote.spec() if self.remote else self.bup_dir)
            self._check(hook.run(["mkdir", "-p", "--", self.bup_dir], timeout=60), "mkdir")
            self._check(hook.run(commands.init(), timeout=600), "bup init")
        if indexed is None or not indexed.ok:  # e.g. the host's bup dir did not exist before init
            indexed = hook.run(index, timeout=self.command_timeout)
        self._check(indexed, "bup index")
        return None

    def execute_complete(self, context: Any, event: dict[str, Any], taken_at: str, size: int | None) -> dict[str, Any]:
        when = self.run_date(context)
        save_name = store.save_name_for(when)
        taken = datetime.fromisoformat(taken_at)
        with self.node_hook() as hook:
            result = self._check(self.remote_job_result(hook, event, what=f"bup save on {self.host}"), "bup save")
        commit = store.parse_commit_id(result.stdout)
        self.log.info("saved %s/%s (commit %s, %s bytes of data)", self.branch, save_name, commit, size)
        late = dates.late_warning(when, taken, f"save {self.branch}/{save_name}")
        if late:
            self.log.warning("%s", late)
        self.record_outcome(
            context, status="done", node=self.host,
            produced=[{"id": f"{self.branch}/{save_name}", "size": size}],
            detail=f"commit {commit}; logical date {dates.format_instant(when)}, taken at {dates.format_instant(taken)}",
            warnings=[late] if late else (),
        )
        return {"save": save_name, "commit": commit, "skipped": False, "data_bytes": size}


_DAY_RE = re.compile(r"^\d{4}-\d\d-\d\d$")


def choose_save(saves: Sequence[store.Save], which: str) -> store.Save:
    """``latest``, a day ``YYYY-MM-DD`` (its newest save) or an exact save name."""
    if not saves:
        raise BupError("the backup set has no saves")
    if which == "latest":
        return saves[-1]
    if _DAY_RE.match(which):
        same_day = [s for s in saves if s.day == which]
        if not same_day:
            raise BupError(f"param 'save': no save on {which}; saves: {', '.join(s.name for s in saves[-10:])}")
        return same_day[-1]
    if store.SAVE_NAME_RE.match(which):
        for s in saves:
            if s.name == which:
                return s
        raise BupError(f"param 'save': no save named {which!r}; saves: {', '.join(s.name for s in saves[-10:])}")
    raise BupError(f"param 'save': {which!r} must be 'latest', YYYY-MM-DD or YYYY-MM-DD-HHMMSS")


_SAFE_RESTORE_PATH = re.compile(rf"/{names.SAVED_PATH_CHARS}*")
PATH_MAX = 4095  # a longer path is no path (Linux PATH_MAX, its NUL excluded)


def _clipped(value: Any, limit: int = 200) -> str:
    """repr() of a param value, at most `limit` characters: a 1 MB value stays a readable error."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class BupRestoreOperator(BupNodeOperator):
    """
    Restore `path` (as it was saved, e.g. ``/etc``) of one save into `target_dir`, on the host.

    Never writes into live data: the target folder must be absent or empty, and neither inside
    nor holding the entry's paths, staging folder, bup dir or repository (`protected_paths` plus
    what the operator knows), as given and with its symlinks resolved on the machine written to.
    Refused before anything is written.
    """

    template_fields = ("path", "save", "target_dir", "where")

    def __init__(
        self,
        *,
        branch: str,
        path: str,
        save: str,
        target_dir: str,
        where: str = "host",
        server: Mapping[str, Any] | None = None,
        default_target_root: str = "/var/tmp/bup-restore",
        protected_paths: Sequence[tuple[str, str]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.branch = store.check_branch(branch)
        self.path = path
        self.save = save
        self.target_dir = target_dir
        self.where = where
        self.server = dict(server or {})
        self.default_target_root = default_target_root
        self.protected_paths = [tuple(p) for p in protected_paths]

    def protected(self) -> list[tuple[str, str]]:
        """Live data a restore never writes into: the entry's paths (given by the builder), the
        host's bup dir and the repository. On either machine: a host may be its own backup server."""
        found = [*self.protected_paths, ("bup_dir", self.bup_dir)]
        if self.remote is not None and self.remote.path:
            found.append(("server.repo_dir, the repository", self.remote.path))
        if self.server.get("bup_dir"):
            found.append(("server.repo_dir, the repository", self.server["bup_dir"]))
        return list(dict.fromkeys(found))

    def _check_target(self, hook: BupNodeHook | None, protected: list[tuple[str, str]]) -> str:
        """The target folder, refused when it overlaps live data as given or once its symlinks are
        resolved on the machine written to; returns the resolved folder (what the restore writes)."""
        field = "param 'target_dir'"
        try:
            if hook is None:  # as given, before anything connects
                return check_outside(field, self.target_dir, protected)
            paths = [self.target_dir, *(p for _, p in protected)]
            result = self._check(hook.run(realpath_argv(paths), timeout=60), "realpath")
            resolved, *real = parse_nul_list(result.stdout, len(paths))
            also = [(f"{label}, resolved on {self.host}", r) for (label, _), r in zip(protected, real, strict=True)]
            return check_outside(field, self.target_dir, [*protected, *also], resolved=resolved, where=self.host)
        except UnsafePathError as exc:
            raise BupError(str(exc)) from None

    def _use_server(self) -> None:
        """Restore on the backup server itself, from its repository directory (no ``-r``)."""
        if not self.server:
            raise BupError("param 'where': value 'server' but no backup server is configured")
        self.host, self.port = self.server["host"], self.server.get("port", 22)
        self.ssh_conn_id, self.bup_dir = self.server.get("ssh_conn_id"), self.server["bup_dir"]
        self.remote = None

    def _validate(self) -> None:
        for name, value in (("path", self.path), ("target_dir", self.target_dir)):
            # fullmatch: `$` would let a trailing newline through
            if not isinstance(value, str) or not _SAFE_RESTORE_PATH.fullmatch(value) or "/../" in f"{value}/":
                raise BupError(f"param {name!r}: value {_clipped(value)} must be an absolute path without '..'")
            if len(value) > PATH_MAX:
                raise BupError(f"param {name!r}: value {_clipped(value)} is longer than {PATH_MAX} characters")
        if self.target_dir.rstrip("/") in ("", "/"):
            raise BupError(f"param 'target_dir': value {self.target_dir!r} cannot be the root folder")

    def execute(self, context: Any) -> dict[str, Any]:
        if not self.target_dir:  # a fresh folder per run: a second restore never meets the first
            run = re.sub(r"[^A-Za-z0-9_.-]", "_", str(context.get("run_id") or self.run_date(context).isoformat()))
            self.target_dir = f"{self.default_target_root}/{self.branch}/{run}"
        self._validate()
        if self.where not in ("host", "server"):
            raise BupError(f"param 'where': value {self.where!r} must be 'host' or 'server'")
        protected = self.protected()  # before _use_server: the host's bup dir stays protected
        if self.where == "server":
            self._use_server()
        self._check_target(None, protected)
        dry_run = self.is_dry_run(context)
        commands = self.commands
        with self.node_hook() as hook:
            target = self._check_target(hook, protected)
            saves = list_saves(hook, commands, self.branch, remote=self.remote is not None)
            if not saves:
                raise BupError(f"backup set {self.branch!r} has no saves in {self.remote.spec() if self.remote else self.bup_dir}")
            chosen = choose_save(saves, str(self.save))
            source = f"/{self.branch}/{chosen.name}{self.path.rstrip('/') or ''}"
            if self.path.rstrip("/") == "":
                source += "/"
            check = hook.run(["find", target, "-mindepth", "1", "-maxdepth", "1", "-print", "-quit"], timeout=60)
            if check.ok and check.stdout.strip():
                raise BupError(f"param 'target_dir': {self.target_dir!r} on {self.host} is not empty; restore into an empty folder")
            if dry_run:
                self.log.info("dry run: would restore %s into %s on %s", source, target, self.host)
                self.record_outcome(context, status="dry_run", node=self.host, detail=f"{source} -> {target}")
                return {"save": chosen.name, "source": source, "restored": 0}
            # the resolved folder: a symlink swapped in after the check cannot redirect the restore
            self._check(hook.run(["mkdir", "-p", "--", target], timeout=60), "mkdir")
            restore = commands.restore(source, target, remote=self.remote is not None)
            result = self._check(hook.run(restore, timeout=self.command_timeout), "bup restore")
        count = store.parse_restore_count(result.stderr)
        self.log.info("restored %s into %s on %s (%s paths)", source, target, self.host, count)
        self.record_outcome(
            context, status="done", node=self.host,
            produced=[{"id": f"{source} -> {target}", "size": None}],
            detail=f"{count} paths restored" if count is not None else "",
        )
        return {"save": chosen.name, "source": source, "restored": count}


class BupFsckOperator(RemoteJobMixin, BupNodeOperator):
    """``bup fsck`` of the repository, on the backup server; with par2 there, also writes recovery blocks.

    Both passes run as detached jobs (:mod:`~airflow_backup_provider.operators.remote_job`)."""

    def __init__(
        self,
        *,
        use_par2: bool = True,
        skip_on_download: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.use_par2 = use_par2
        self.skip_on_download = skip_on_download
        self.deferrable = deferrable

    def execute(self, context: Any) -> dict[str, Any]:
        if self.skip_on_download and context["params"].get("direction") == "download":
            raise AirflowSkipException("download run: the repository is being brought back, nothing to check yet")
        with self.node_hook() as hook:
            par2 = self.use_par2 and hook.run(["sh", "-c", "command -v par2"], timeout=60).ok
            # verify every pack first, and apart: `bup fsck -g` skips the packs that already have
            # recovery blocks, so a pack damaged after its first check would pass it for ever
            return self.run_remote_job(
                context, hook, self.commands.fsck(), step="fsck", method_name="verified",
                timeout=self.command_timeout, kwargs={"par2": par2},
            )

    def verified(self, context: Any, event: dict[str, Any], par2: bool) -> dict[str, Any]:
        dry_run = self.is_dry_run(context)
        with self.node_hook() as hook:
            verify = self._check(self.remote_job_result(hook, event, what=f"bup fsck on {self.host}"), "bup fsck")
            self.log.info("bup fsck (every pack verified):\n%s", verify.stderr.strip()[-2000:])
            if par2 and not dry_run:
                return self.run_remote_job(
                    context, hook, self.commands.fsck(generate_par2=True), step="fsck-g",
                    method_name="execute_complete", timeout=self.command_timeout, kwargs={"par2": par2},
                )
        return self.execute_complete(context, None, par2=par2)

    def execute_complete(self, context: Any, event: dict[str, Any] | None, par2: bool) -> dict[str, Any]:
        dry_run = self.is_dry_run(context)
        if event is not None:
            with self.node_hook() as hook:
                written = self._check(self.remote_job_result(hook, event, what=f"bup fsck -g on {self.host}"), "bup fsck -g")
            self.log.info("bup fsck -g (recovery blocks for new packs):\n%s", written.stderr.strip()[-2000:])
        detail = f"bup fsck of {self.bup_dir}: ok" + (" (par2 recovery blocks written)" if par2 and not dry_run else "")
        self.log.info("%s", detail)
        self.record_outcome(context, status="done", node=self.host, detail=detail)
        return {"par2": par2}


class BupPruneOperator(RetentionOperator, BupNodeOperator):
    """
    Remove old saves of one backup set, on the backup server, with ``bup rm`` then ``bup gc``
    (:class:`~airflow_backup_provider.operators.retention.RetentionOperator`).

    ``mode="retention"``: the entry's retention policy (:mod:`airflow_backup_provider.retention`)
    decides. ``mode="prune-older"``: bup's own keep periods decide; ``bup prune-older --pretend``
    makes the plan, and exactly the saves it removes go. Either way every save is checked again on
    a fresh ``bup ls`` just before its removal (nothing newer than the run's logical date, never
    the newest save), and ``dry_run`` only shows the plan. A dry run made no save: in retention
    mode it plans with the save the real run would make (so it prunes what the real run would);
    ``bup prune-older --pretend`` can only plan with the saves that exist.
    """

    def __init__(
        self,
        *,
        branch: str,
        mode: str = "retention",
        policy: RetentionPolicy | None = None,
        keep: store.PruneOlderKeep | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(policy=policy if policy is not None else RetentionPolicy(), **kwargs)
        if mode not in ("retention", "prune-older"):
            raise ValueError(f"mode: value {mode!r} must be 'retention' or 'prune-older'")
        if mode == "prune-older" and keep is None:
            raise ValueError("mode 'prune-older' needs keep periods")
        self.branch = store.check_branch(branch)
        self.mode = mode
        self.keep = keep
        self._hook: BupNodeHook | None = None

    def execute(self, context: Any) -> dict[str, Any]:
        with self.node_hook() as hook:
            self._hook = hook
            try:
                return super().execute(context)
            finally:
                self._hook = None

    def _ref(self, save: store.Save) -> str:
        return f"{self.branch}/{save.name}"

    def _saves(self) -> list[store.Save]:
        return list_saves(self._hook, self.commands, self.branch, remote=False) or []

    def _item(self, save: store.Save) -> BackupItem:
        # listed by branch: every save of it is this entry's, and bup writes a save at once
        return BackupItem(id=self._ref(save), created_at=save.created_at, complete=True, ours=True, meta={"branch": self.branch})

    def list_groups(self, context: Any, as_of: datetime, dry_run: bool) -> list[RetentionGroup]:
        saves = self._saves()
        items = [self._item(s) for s in saves]
        if self.mode == "retention" and dry_run and not store.saves_for_date(saves, as_of):
            planned = store.parse_save_name(store.save_name_for(as_of))
            items.append(planned_backup(self._ref(planned), planned.created_at, branch=self.branch))
        return [RetentionGroup(f"branch {self.branch}", items)]

    def plan(self, group: RetentionGroup, as_of: datetime) -> RetentionPlan:
        if self.mode == "retention":
            return super().plan(group, as_of)
        pretend = self._check(
            self._hook.run(self.commands.prune_older([self.branch], self.keep, wrt=as_of, pretend=True), timeout=600),
            "bup prune-older --pretend",
        )
        actions = store.parse_prune_pretend(pretend.stdout)
        removed = {a.save for a in actions if not a.keep}
        ambiguous = removed & {a.save for a in actions if a.keep}
        if ambiguous:
            raise BupError(f"bup prune-older --pretend: saves sharing a second, cannot tell which goes: {sorted(ambiguous)}")
        # prune-older names a save by its date only (no -0/-1 suffix): match on that
        gone = [i for i in group.items if (name := i.id.split("/", 1)[1]) in removed or name[:17] in removed]
        plan = RetentionPlan(
            as_of=as_of,
            policy=self.policy,
            keep=[Decision(i, ["bup prune-older keeps it"]) for i in group.items if i not in gone],
            prune=[Decision(i, []) for i in gone],
        )
        self.log.info("bup prune-older --pretend plan:\n%s", plan.table())
        return plan

    def reread(self, group: RetentionGroup, item: BackupItem) -> BackupItem | None:
        return next((self._item(s) for s in self._saves() if self._ref(s) == item.id), None)

    def delete_item(self, group: RetentionGroup, item: BackupItem) -> str:
        self._check(self._hook.run(self.commands.rm([item.id]), timeout=self.command_timeout), "bup rm")
        return item.id

    def after_deletes(self, run: RetentionRun) -> None:
        self._check(self._hook.run(self.commands.gc(), timeout=self.command_timeout), "bup gc")
        left = {self._ref(s) for s in self._saves()}
        survivors = [name for name in run.deleted if name in left]
        if survivors:
            raise BupError(f"prune on {self.host}: still present after removal: {', '.join(survivors)}")

    def outcome_node(self) -> str:
        return self.host

    def result(self, context: Any, run: RetentionRun) -> dict[str, Any]:
        # oldest first, as bup lists them
        return {"pruned": sorted(run.pruned), "kept": sorted(i.split("/", 1)[1] for i in run.kept), "dry_run": run.dry_run}
