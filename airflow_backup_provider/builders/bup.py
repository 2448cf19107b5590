"""bup DAGs: ``bup_<name>`` (dumps, save, prune), ``bup_<name>_s3_sync`` (fsck, S3 copy) and
``bup_<name>_restore`` (manual)."""

from __future__ import annotations

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param

from airflow_backup_provider import names
from airflow_backup_provider.builders.common import FORM_DAY, FORM_END, FORM_PATH, finish_dag, new_dag
from airflow_backup_provider.builders.drill import bup_drill, drill_turn
from airflow_backup_provider.config import BupHost
from airflow_backup_provider.operators.bup import (
    PATH_MAX,
    BupDumpOperator,
    BupFsckOperator,
    BupPruneOperator,
    BupRestoreOperator,
    BupSaveOperator,
)
from airflow_backup_provider.operators.s3_sync import S3SyncOperator
from airflow_backup_provider.stores.bup import PruneOlderKeep, Remote
from airflow_backup_provider.stores.s3sync import BUP_IN_PROGRESS


def repository_asset(entry: BupHost) -> Asset:
    """The Asset the backup DAG updates after each save (and the sync DAG can wait for)."""
    return Asset(name=f"bup_{entry.name}_repository", uri=f"bup://{entry.server.host}{entry.server.repo_dir}")


def remote_of(entry: BupHost) -> Remote:
    return Remote(host=entry.server.host, path=entry.server.repo_dir, user=entry.server.user, port=entry.server.port)


def _host_args(entry: BupHost) -> dict:
    return {
        "host": entry.host,
        "port": entry.port,
        "ssh_conn_id": entry.ssh_conn_id,
        "sudo_user": entry.sudo_user,
        "bup_dir": entry.local_bup_dir,
        "remote": remote_of(entry),
        "command_timeout": entry.command_timeout,
    }


def _server_args(entry: BupHost) -> dict:
    return {
        "host": entry.server.host,
        "port": entry.server.port,
        "ssh_conn_id": entry.server.ssh_conn_id or entry.ssh_conn_id,
        "sudo_user": entry.sudo_user,
        "bup_dir": entry.server.repo_dir,
        "remote": None,
        "command_timeout": entry.command_timeout,
    }


def live_paths(entry: BupHost) -> list[tuple[str, str]]:
    """(field, path) of everything a restore or a download must never write into."""
    found = [("paths, a backed-up path", p) for p in entry.paths]
    if entry.staging_dir:
        found.append(("staging_dir", entry.staging_dir))
    found.append(("bup_dir", entry.local_bup_dir))
    found.append(("server.repo_dir, the repository", entry.server.repo_dir))
    return found





def s3_prefix(entry: BupHost) -> str:
    assert entry.s3_sync is not None
    return f"{entry.s3_sync.prefix}/{entry.name}"


def build_backup(entry: BupHost):
    server = f"{entry.server.host}:{entry.server.repo_dir}"
    steps = ["dumps into " + str(entry.staging_dir)] if entry.dumps else []
    steps += [f"`bup index` + `bup save -n {entry.backup_set}` of {', '.join(entry.saved_paths)} to {server}"]
    if entry.prune:
        steps.append(f"prune old saves ({entry.prune_mode}) on {entry.server.host}")
    dag = new_dag(
        entry,
        summary="Daily file backup with bup: " + "; then ".join(steps) + ". "
        "The save is dated with the run's logical date: a retried or repeated run never saves twice.",
        nodes=[entry.host, entry.server.host],
    )
    with dag:
        save = BupSaveOperator(
            task_id="save",
            branch=entry.backup_set,
            paths=entry.saved_paths,
            excludes=entry.excludes,
            exclude_rx=entry.exclude_rx,
            one_file_system=entry.one_file_system,
            outlets=[repository_asset(entry)],
            server=_server_args(entry),
            deferrable=entry.deferrable,
            **_host_args(entry),
        )
        if entry.dumps:
            dumps = BupDumpOperator(
                task_id="dumps",
                staging_dir=entry.staging_dir,
                dumps=[d.model_dump() for d in entry.dumps],
                **_host_args(entry),
            )
            dumps >> save
        if entry.prune:
            prune = BupPruneOperator(
                task_id="prune",
                branch=entry.backup_set,
                mode=entry.prune_mode,
                policy=entry.retention,
                keep=_keep(entry),
                # a dry run skips the save (no Asset event) and still shows what prune would do
                trigger_rule="none_failed",
                **_server_args(entry),
            )
            save >> prune
    finish_dag(dag, entry, shares_turn_with=drill_turn(entry, touches_nodes=True))  # the drill restores on the server
    return dag


def _keep(entry: BupHost) -> PruneOlderKeep | None:
    if entry.prune_older is None:
        return None
    p = entry.prune_older
    return PruneOlderKeep(p.keep_all_for, p.keep_dailies_for, p.keep_monthlies_for, p.keep_yearlies_for)


def build_s3_sync(entry: BupHost):
    sync = entry.s3_sync
    assert sync is not None
    if sync.on_backup and sync.schedule:
        schedule = AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(_cron(sync.schedule), timezone="UTC"), assets=repository_asset(entry)
        )
    elif sync.on_backup:
        schedule = repository_asset(entry)
    else:
        schedule = sync.schedule
    where = f"s3://{sync.bucket}/{s3_prefix(entry)}/"
    dag = new_dag(
        entry,
        suffix="_s3_sync",
        summary=(
            f"Weekly copy of the repository {entry.server.host}:{entry.server.repo_dir} to {where}, rsync-like "
            f"(only new or changed files, compared by {sync.compare}; deletes {'on' if sync.delete else 'off'}), "
            + ("after `bup fsck` (par2 recovery blocks when installed). " if entry.fsck else "")
            + "Trigger with direction=download and local_dir=<empty folder> to pull the repository back from S3."
        ),
        nodes=[entry.server.host],
        schedule=schedule,
        params={
            "direction": Param(
                "upload", enum=["upload", "download"], title="Direction",
                description="upload: repository -> S3. download: S3 -> local_dir (the backup server is gone).",
            ),
            "local_dir": Param(
                entry.server.repo_dir, type="string", pattern=FORM_PATH, maxLength=PATH_MAX, title="Local folder",
                description="upload: the repository folder (or a folder inside it). download: an empty or new "
                "folder outside the repository and the backed-up paths.",
            ),
        },
        extra_tags=["s3-sync"],
    )
    with dag:
        copy = S3SyncOperator(
            task_id="s3_sync",
            local_dir="{{ params.local_dir }}",
            bucket=sync.bucket,
            prefix=s3_prefix(entry),
            direction="{{ params.direction }}",
            compare=sync.compare,
            delete=sync.delete,
            concurrency=sync.concurrency,
            exclude=BUP_IN_PROGRESS,  # a save running during the sync: its temporary files stay out
            upload_root=entry.server.repo_dir,
            protected_paths=live_paths(entry),
            aws_conn_id=entry.aws_conn_id,
            sse=sync.sse,
            kms_key_id=sync.kms_key_id,
            node=entry.server.host,
            trigger_rule="none_failed",
            **({"queue": sync.queue} if sync.queue else {}),
        )
        if entry.fsck:
            fsck = BupFsckOperator(task_id="fsck", skip_on_download=True, deferrable=entry.deferrable, **_server_args(entry))
            fsck >> copy
    finish_dag(dag, entry)
    return dag


def build_fsck(entry: BupHost):
    """Without an S3 sync (whose DAG runs fsck first), the repository still gets its weekly check."""
    dag = new_dag(
        entry,
        suffix="_fsck",
        summary=(
            f"Weekly `bup fsck` of the repository {entry.server.host}:{entry.server.repo_dir} "
            "(par2 recovery blocks written when par2 is installed there)."
        ),
        nodes=[entry.server.host],
        schedule=entry.fsck_schedule,
        extra_tags=["fsck"],
    )
    with dag:
        BupFsckOperator(task_id="fsck", deferrable=entry.deferrable, **_server_args(entry))
    finish_dag(dag, entry)
    return dag


def _cron(schedule: str) -> str:
    presets = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *"}
    return presets.get(schedule, schedule)


def build_restore(entry: BupHost):
    default_path = entry.staging_dir or entry.paths[0]
    dag = new_dag(
        entry,
        suffix="_restore",
        summary=(
            f"Manual restore from the bup backup set `{entry.backup_set}` in {entry.server.host}:{entry.server.repo_dir}: "
            "one path of one save into an empty folder, on the host (through `-r`) or on the backup server. "
            "Live data is never overwritten."
        ),
        nodes=[entry.host, entry.server.host],
        schedule=None,
        params={
            "save": Param(
                "latest", type="string", pattern=r"^(latest|" + FORM_DAY + r"(-[0-9]{6}(-[0-9]{1,6})?)?)" + FORM_END, title="Save",
                description="latest, a day YYYY-MM-DD (its newest save) or a save name YYYY-MM-DD-HHMMSS.",
            ),
            "path": Param(
                default_path, type="string", pattern=r"^(?!.*/\.\.(/|$))/" + names.SAVED_PATH_CHARS + "*" + FORM_END,
                maxLength=PATH_MAX, title="Path",
                description="The path as it was backed up, e.g. /etc or " + default_path + ".",
            ),
            "target_dir": Param(
                "", type="string", pattern=r"^" + FORM_END + "|" + FORM_PATH, maxLength=PATH_MAX, title="Target folder",
                description="An empty (or new) folder to restore into, outside the backed-up paths, the staging "
                "folder, the bup dir and the repository (symlinks resolved); empty: a new folder "
                f"/var/tmp/bup-restore/{entry.backup_set}/<run id> on the chosen machine.",
            ),
            "where": Param(
                "host", enum=["host", "server"], title="Where",
                description="host: restore on the backed-up host; server: on the backup server itself.",
            ),
        },
        extra_tags=["restore"],
    )
    with dag:
        BupRestoreOperator(
            task_id="restore",
            branch=entry.backup_set,
            path="{{ params.path }}",
            save="{{ params.save }}",
            target_dir="{{ params.target_dir }}",
            where="{{ params.where }}",
            server=_server_args(entry),
            protected_paths=live_paths(entry),
            **_host_args(entry),
        )
    finish_dag(dag, entry)
    return dag


def build(entry: BupHost) -> list:
    dags = [build_backup(entry), build_restore(entry)]
    if entry.s3_sync is not None:
        dags.append(build_s3_sync(entry))
    elif entry.fsck and entry.fsck_schedule is not None:
        dags.append(build_fsck(entry))
    save_form = r"^(|latest|" + FORM_DAY + r"(-[0-9]{6}(-[0-9]{1,6})?)?)" + FORM_END
    drill = bup_drill(entry, _server_args(entry), s3_prefix(entry) if entry.s3_sync else None, save_form)
    return dags + ([drill] if drill else [])
