"""The devicedb restore: every node stopped, each store set aside and replaced by its tar, verified.

Nothing is deleted before the restored cluster is verified: each node's live store is renamed
to ``<store>.pre-restore-<run>`` (one rename, same folder), and on any failure the rollback puts
it back and the nodes are started again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from airflow.sdk import conf
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
)
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

from airflow_backup_provider.config.devicedb import DevicedbNodeSpec
from airflow_backup_provider.hooks.remote import RemoteCommandHook
from airflow_backup_provider.notifications import send_report_mail
from airflow_backup_provider.operators.devicedb import DevicedbBaseOperator, task_label
from airflow_backup_provider.operators.remote_job import RemoteJobMixin
from airflow_backup_provider.stores import devicedb as ddb

RESOLVE_TASK_ID = "resolve_snapshot"
FAILED_STATES = {"failed", "upstream_failed"}


def _run_states(context: Any) -> dict[str, str]:
    ti = context["ti"]
    run_id = context["run_id"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})
    return {key: str(state) if state is not None else "none" for key, state in states.items()}


def _exists(remote: RemoteCommandHook, path: str) -> bool:
    return remote.run(["test", "-e", path], timeout=60).exit_code == 0


def _runs(remote: RemoteCommandHook, status_command: Sequence[str], running_output: str) -> bool:
    result = remote.run(status_command, timeout=120)
    return result.exit_code == 0 and running_output in [line.strip() for line in result.stdout.splitlines()]


def _until_state(remote: RemoteCommandHook, status_command: Sequence[str], running_output: str, want: bool) -> bool:
    """Ask the status command a few times (tenacity, bounded) until the node runs (or not)."""
    retrying = Retrying(
        retry=retry_if_result(lambda ok: not ok),
        stop=stop_after_attempt(6),
        wait=wait_exponential(multiplier=0.5, min=0.5, max=10),
        retry_error_callback=lambda state: state.outcome.result(),
    )
    return retrying(lambda: _runs(remote, status_command, running_output) == want)


class DevicedbResolveSnapshotOperator(DevicedbBaseOperator):
    """Check the params and find the snapshot: a UUID, or a date meaning its newest snapshot."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("task_id", RESOLVE_TASK_ID)
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)

    def execute(self, context: Any) -> dict[str, Any]:
        params = context["params"]
        dry_run = self.is_dry_run(context)
        wanted = str(params.get("snapshot") or "").strip()
        if not wanted:
            raise AirflowFailException("param 'snapshot': is required (a snapshot UUID or a date YYYY-MM-DD)")
        confirm = str(params.get("confirm") or "")
        if not dry_run and confirm != self.cluster:
            raise AirflowFailException(
                f"param 'confirm': value {confirm!r} must be the cluster name {self.cluster!r}: "
                "the restore stops every node and replaces every store"
            )
        if not dry_run:
            self.refuse_overlap(context, f"devicedb_{self.cluster}", "wait until the backup run ends, then restore")
        manifests = self.complete_manifests()
        try:
            manifest = dict(ddb.choose_snapshot(manifests, wanted))
        except (LookupError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc
        configured = sorted(n.label for n in self.nodes)
        recorded = sorted(n["node"] for n in manifest["nodes"])
        if configured != recorded:
            raise AirflowFailException(
                f"snapshot {manifest['uuid']}: its nodes {recorded} are not the clusters file's nodes {configured}"
            )
        manifest["tag"] = ddb.run_tag(context["run_id"])
        plan = (
            f"restore snapshot {manifest['uuid']} (logical date {manifest['logical_date']}, "
            f"taken at {manifest['created_at']}, {manifest['total_size']} bytes) onto {', '.join(configured)}"
        )
        if dry_run:
            self.record_outcome(context, status="dry_run", node=self.cluster, detail=f"dry run: would {plan}")
            raise AirflowSkipException(f"dry run: would {plan}")
        self.log.info("Will %s", plan)
        return manifest


class DevicedbRestoreNodeOperator(RemoteJobMixin, DevicedbBaseOperator):
    """On one stopped node: set the store aside, then extract that node's tar into a new store.

    The long steps (clearing a partial restore of an earlier try, ``tar -xf``) run as detached
    jobs (:mod:`~airflow_backup_provider.operators.remote_job`): deferrable, they hold no worker
    slot; a killed task stops them."""

    def __init__(
        self,
        *,
        node: DevicedbNodeSpec,
        status_command: Sequence[str],
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.node_spec = node
        self.node = node.label
        self.status_command = list(status_command)
        self.deferrable = deferrable

    def _plan(self, context: Any) -> tuple[dict[str, Any], dict[str, Any], str, str]:
        """(manifest, this node's piece, store, tar file): the same on every try and after a deferral."""
        manifest = context["ti"].xcom_pull(task_ids=RESOLVE_TASK_ID)
        piece = next(n for n in manifest["nodes"] if n["node"] == self.node)
        store = self.node_spec.store_dir.rstrip("/")
        tar_file = (
            f"{self.node_spec.transfer_dir.rstrip('/')}/devicedb-restore-{manifest['tag']}-{task_label(self.node)}.tar"
            if self.node_spec.transfer_dir
            else f"{store}.restore-{manifest['tag']}.tar"
        )
        return manifest, piece, store, tar_file

    def execute(self, context: Any) -> dict[str, Any]:
        plan = self._plan(context)
        manifest, _, store, _ = plan
        aside = ddb.aside_path(store, manifest["tag"])
        with self.remote(self.node_spec) as remote:
            running = remote.run(self.status_command, timeout=120)
            if running.exit_code == 0:
                raise AirflowException(
                    f"node {self.node}: still running ({' '.join(self.status_command)} exits 0); "
                    "refusing to touch its store"
                )
            if _exists(remote, aside):
                # A previous try set the live store aside already: what is in `store` is our own
                # partial extraction, never the original.
                self.log.info("%s already holds the original store; clearing the partial restore in %s", aside, store)
                return self.run_remote_job(
                    context, remote, ["rm", "-rf", "--", store], step="clear", method_name="cleared",
                    timeout=3600, kwargs={"aside": aside},
                )
            if _exists(remote, store):
                remote.run(["mv", "--", store, aside], timeout=600).check(f"setting {store} aside")
                self.log.info("node %s: live store moved to %s", self.node, aside)
            else:
                aside = ""
                self.log.warning("node %s: no store at %s, nothing to set aside", self.node, store)
            return self._fill(context, remote, plan, aside)

    def cleared(self, context: Any, event: dict[str, Any], aside: str) -> dict[str, Any]:
        plan = self._plan(context)
        store = plan[2]
        with self.remote(self.node_spec) as remote:
            self.remote_job_result(remote, event, what=f"clearing {store} on {self.node}").check(
                f"clearing the partial restore {store}"
            )
            return self._fill(context, remote, plan, aside)

    def _fill(
        self, context: Any, remote: RemoteCommandHook, plan: tuple[dict[str, Any], dict[str, Any], str, str], aside: str
    ) -> dict[str, Any]:
        """Bring the tar to the node, check its members, then extract it (a detached job)."""
        _, piece, store, tar_file = plan
        remote.run(["mkdir", "-p", "--", store], timeout=60).check(f"creating {store}")
        self._transfer(remote, piece, tar_file)
        listing = remote.run(["tar", "-tf", tar_file], timeout=600).check(f"listing {tar_file}")
        members = ddb.check_tar_members(listing.stdout.splitlines())
        return self.run_remote_job(
            context, remote, ["tar", "-xf", tar_file, "-C", store], step="extract", method_name="extracted",
            timeout=3600, kwargs={"aside": aside, "members": members},
        )

    def extracted(self, context: Any, event: dict[str, Any], aside: str, members: list[str]) -> dict[str, Any]:
        manifest, piece, store, tar_file = self._plan(context)
        with self.remote(self.node_spec) as remote:
            self.remote_job_result(remote, event, what=f"tar -xf on {self.node}").check(f"extracting {tar_file}")
            remote.run(["rm", "-f", "--", tar_file], timeout=600).check(f"removing {tar_file}")
        self.record_outcome(
            context,
            status="done",
            node=self.node,
            produced=[{"id": f"{store} from snapshot {manifest['uuid']}", "size": piece["size"]}],
            detail=f"{len(members)} files; previous store kept at {aside or '(none)'}",
        )
        return {"node": self.node, "store": store, "aside": aside, "files": members}

    def _transfer(self, remote: RemoteCommandHook, piece: dict[str, Any], target: str) -> None:
        """Stream the tar from S3 to the node over SFTP, checking size and SHA-256 against the manifest."""
        digest = hashlib.sha256()
        size = 0
        with remote.sftp() as sftp, sftp.open(target, "wb") as out:
            out.set_pipelined(True)
            for chunk in self.s3().iter_object(self.bucket, piece["key"]):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if size != piece["size"] or digest.hexdigest() != piece["sha256"]:
            remote.run(["rm", "-f", "--", target], timeout=600)
            raise AirflowException(
                f"node {self.node}: s3://{self.bucket}/{piece['key']} gave {size} bytes with SHA-256 "
                f"{digest.hexdigest()}, the manifest says {piece['size']} bytes with {piece['sha256']}"
            )
        on_node = remote.run(["sha256sum", "--", target], timeout=3600).check(f"hashing {target}")
        if ddb.parse_sha256sum(on_node.stdout) != piece["sha256"]:
            raise AirflowException(f"node {self.node}: {target} on the node does not match SHA-256 {piece['sha256']}")


class DevicedbRollbackOperator(DevicedbBaseOperator):
    """
    When anything in the restore failed: put every node's old store back and alert.

    Runs whatever happened upstream (``all_done``) and does nothing if nothing failed. For each
    node whose store was set aside: stop it, move the restored store to
    ``<store>.failed-restore-<run>``, and rename the old one back. The nodes are started by
    ``ensure_started`` afterwards.
    """

    def __init__(
        self,
        *,
        stop_command: Sequence[str],
        status_command: Sequence[str],
        running_output: str,
        watched_task_ids: Sequence[str],
        alert_emails: Sequence[str] = (),
        smtp_conn_id: str = "smtp_default",
        from_email: str = "airflow-backup@localhost",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task_id", "rollback")
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.stop_command = list(stop_command)
        self.status_command = list(status_command)
        self.running_output = running_output
        self.watched_task_ids = list(watched_task_ids)
        self.alert_emails = list(alert_emails)
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email

    def execute(self, context: Any) -> dict[str, Any]:
        states = _run_states(context)
        failed = sorted(t for t in self.watched_task_ids if states.get(t) in FAILED_STATES)
        if not failed:
            raise AirflowSkipException("nothing failed: no rollback")
        tag = ddb.run_tag(context["run_id"])
        restored, problems = [], []
        for spec in self.nodes:
            store = spec.store_dir.rstrip("/")
            aside = ddb.aside_path(store, tag)
            try:
                with self.remote(spec) as remote:
                    if not _exists(remote, aside):
                        self.log.info("node %s: no store set aside, nothing to put back", spec.label)
                        continue
                    remote.run(self.stop_command, timeout=600).check(f"stopping {spec.label} before the rollback")
                    if not _until_state(remote, self.status_command, self.running_output, want=False):
                        raise AirflowException(f"{spec.label} still runs after the stop: its store is left as it is")
                    if _exists(remote, store):
                        remote.run(["mv", "--", store, ddb.failed_restore_path(store, tag)], timeout=600).check(
                            f"moving the restored {store} away"
                        )
                    remote.run(["mv", "--", aside, store], timeout=600).check(f"putting {aside} back")
                    restored.append(spec.label)
            except Exception as exc:
                problems.append(f"{spec.label}: {exc}")
                self.log.error("rollback on %s failed: %s", spec.label, exc)
        detail = (
            f"restore failed in {', '.join(failed)}; old stores put back on {', '.join(restored) or 'no node'}"
            + (f"; ROLLBACK PROBLEMS: {'; '.join(problems)}" if problems else "")
        )
        if self.alert_emails:
            ti = context["ti"]
            send_report_mail(
                self.alert_emails,
                subject=f"[backup restore rolled back] {ti.dag_id} {context['run_id']}: {len(restored)} node(s) back on their old store",
                html_body=f"<p>{detail}</p><p>The nodes are started again by the task ensure_started.</p>",
                from_email=self.from_email,
                smtp_conn_id=self.smtp_conn_id,
            )
        self.record_outcome(context, status="done", node=self.cluster, detail=detail)
        if problems:
            raise AirflowException(detail)
        return {"failed": failed, "restored": restored}


class DevicedbEnsureStartedOperator(DevicedbBaseOperator):
    """Start again every node this run stopped, whatever failed after the stop (``all_done``)."""

    def __init__(
        self,
        *,
        start_command: Sequence[str],
        status_command: Sequence[str],
        running_output: str,
        stop_task_ids: dict[str, str],
        start_task_ids: dict[str, str],
        **kwargs: Any,
    ):
        kwargs.setdefault("task_id", "ensure_started")
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.start_command = list(start_command)
        self.status_command = list(status_command)
        self.running_output = running_output
        self.stop_task_ids = dict(stop_task_ids)
        self.start_task_ids = dict(start_task_ids)

    def execute(self, context: Any) -> dict[str, Any]:
        states = _run_states(context)
        rolled_back = states.get("rollback") in ("success", "failed")
        todo = [
            spec
            for spec in self.nodes
            if states.get(self.stop_task_ids[spec.label]) in ("success", "failed")
            and (rolled_back or states.get(self.start_task_ids[spec.label]) != "success")
        ]
        if not todo:
            raise AirflowSkipException("every node this run stopped was started and verified")
        started, problems = [], []
        for spec in todo:
            try:
                with self.remote(spec) as remote:
                    remote.run(self.start_command, timeout=600).check(f"starting {spec.label}")
                    if not _until_state(remote, self.status_command, self.running_output, want=True):
                        raise AirflowException(f"{' '.join(self.status_command)} does not show it running")
                started.append(spec.label)
            except Exception as exc:
                problems.append(f"{spec.label}: {exc}")
        self.record_outcome(
            context,
            status="done",
            node=self.cluster,
            detail=f"started {', '.join(started) or 'none'}" + (f"; FAILED: {'; '.join(problems)}" if problems else ""),
        )
        if problems:
            raise AirflowException("nodes left stopped: " + "; ".join(problems))
        return {"started": started}


class DevicedbFinalizeRestoreOperator(RemoteJobMixin, DevicedbBaseOperator):
    """After verification: keep the old stores beside the new ones, or delete them (from the file).

    Each removal (``rm -rf`` of a whole store) is a detached job; all start at once, then the task
    waits for them one by one (deferrable: in the triggerer)."""

    def __init__(
        self,
        *,
        keep_old_stores: bool = True,
        restore_task_ids: Sequence[str] = (),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ):
        kwargs.setdefault("task_id", "finalize")
        super().__init__(**kwargs)
        self.keep_old_stores = keep_old_stores
        self.restore_task_ids = list(restore_task_ids)
        self.deferrable = deferrable

    def _asides(self, context: Any) -> dict[str, str]:
        asides = {}
        for task_id in self.restore_task_ids:
            result = context["ti"].xcom_pull(task_ids=task_id) or {}
            if result.get("aside"):
                asides[result["node"]] = result["aside"]
        return asides

    def _spec(self, label: str) -> DevicedbNodeSpec:
        return next(spec for spec in self.nodes if spec.label == label)

    def execute(self, context: Any) -> dict[str, Any]:
        asides = self._asides(context)
        pending = [spec.label for spec in self.nodes if spec.label in asides] if not self.keep_old_stores else []
        for label in pending:
            with self.remote(self._spec(label)) as remote:
                self.start_remote_job(context, remote, ["rm", "-rf", "--", asides[label]], step=f"rm-{label}")
        return self.removed(context, None, pending=pending)

    def removed(self, context: Any, event: dict[str, Any] | None, pending: list[str]) -> dict[str, Any]:
        """`event`: the end of the removal on ``pending[0]``; then wait for the next one."""
        asides = self._asides(context)
        if event is not None:
            label, *pending = pending
            with self.remote(self._spec(label)) as remote:
                self.remote_job_result(remote, event, what=f"removing {asides[label]} on {label}").check(
                    f"removing {asides[label]}"
                )
        if pending:
            with self.remote(self._spec(pending[0])) as remote:
                job = self.remote_job(context, remote, ["rm", "-rf", "--", asides[pending[0]]], step=f"rm-{pending[0]}")
                self._remote_job = (remote, job)
                return self.wait_remote_job(
                    context, remote, job, method_name="removed", timeout=3600, kwargs={"pending": pending}
                )
        return self._finished(context, asides)

    def _finished(self, context: Any, asides: dict[str, str]) -> dict[str, Any]:
        manifest = context["ti"].xcom_pull(task_ids=RESOLVE_TASK_ID)
        detail = (
            f"cluster restored to snapshot {manifest['uuid']} ({manifest['logical_date']}); previous stores "
            + ("kept at " + ", ".join(f"{k}:{v}" for k, v in asides.items()) if self.keep_old_stores else "deleted")
        )
        self.record_outcome(
            context, status="done", node=self.cluster, produced=[{"id": f"cluster back at snapshot {manifest['uuid']}", "size": None}], detail=detail
        )
        return {"uuid": manifest["uuid"], "old_stores": asides if self.keep_old_stores else {}}
