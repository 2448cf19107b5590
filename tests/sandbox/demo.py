"""The demo: start the sandbox, run every DAG of the example clusters file once with the real
Airflow (dag.test on a migrated metadata DB), and print a summary table.

    python -m tests.sandbox.demo [--clusters dags/clusters.yaml] [--keep]

Each entry of the clusters file is first adapted to the sandbox by its kind's
`tests/sandbox/kinds/<kind>.py` (`prepare`: make the volumes, buckets, data; put the hosts on
sandbox nodes), which also says which DAGs to run, with which params (`demo_runs`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("DEMO_WORK") or REPO / ".demo")  # DEMO_WORK: a test's own folder


def _prepare_environment() -> None:
    home = WORK / "airflow-home"
    dags = WORK / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    link = dags / "backup_dags.py"
    if not link.exists():
        link.symlink_to(REPO / "dags" / "backup_dags.py")
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("DEMO_LOG_LEVEL", "ERROR"),
            "BACKUP_CLUSTERS_FILE": str(WORK / "clusters.yaml"),
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", default=str(REPO / "dags" / "clusters.yaml"))
    parser.add_argument("--logical-date", default="2026-11-20T00:00:00+00:00")
    parser.add_argument("--keep", action="store_true", help="keep .demo/ (sandbox state, logs) afterwards")
    args = parser.parse_args(argv)

    if WORK.exists():
        shutil.rmtree(WORK)
    _prepare_environment()

    import yaml

    from tests.harness import migrate_db
    from tests.sandbox import Sandbox

    example = yaml.safe_load(Path(args.clusters).read_text())
    entries = example.get("entries") or []
    print(f"demo: {len(entries)} entries in {args.clusters}; starting the sandbox ...", flush=True)
    rows: list[tuple[str, str, float, str]] = []
    with Sandbox(WORK / "sandbox", node_count=3) as sandbox:
        os.environ.update(sandbox.connections())
        runs: list[tuple[str, dict]] = []
        prepared = []
        for entry in entries:
            kind_module = importlib.import_module(f"tests.sandbox.kinds.{entry['kind']}")
            adapted = kind_module.prepare(sandbox, dict(entry))
            prepared.append(adapted)
            runs += kind_module.demo_runs(adapted)
        (WORK / "clusters.yaml").write_text(yaml.safe_dump({**example, "entries": prepared}, sort_keys=False))
        migrate_db()

        from tests.harness import as_logical_date, load_dagbag, task_states
        from tests.harness import xcom as read_xcom

        bag = load_dagbag(WORK / "dags" / "backup_dags.py")
        if bag.import_errors:
            print(f"demo: import errors: {bag.import_errors}", file=sys.stderr)
            return 1
        # then every entry's restore drill, after all the backups
        runs += [(f"{e['kind']}_{e['name']}_drill", {}) for e in prepared if f"{e['kind']}_{e['name']}_drill" in bag.dags]
        runs_of: dict[str, int] = {}
        for dag_id, conf in runs:
            # parsed anew for every run, as a worker would: params resolved for one run must
            # not leak into the next through shared Python objects
            dag = load_dagbag(WORK / "dags" / "backup_dags.py").dags[dag_id]
            # A DAG run again (a dry run, then the real one) gets the next day: dag.test() would
            # otherwise clear and reuse the first run of that date, params included.
            repeat = runs_of[dag_id] = runs_of.get(dag_id, -1) + 1
            print(f"demo: running {dag_id} {conf or ''}", flush=True)
            started = time.monotonic()
            try:
                date = as_logical_date(args.logical_date) + timedelta(days=repeat)
                run = dag.test(logical_date=date, run_conf=conf or None)
                state = str(run.state)
                produced = _produced(dag, run.run_id, task_states(dag_id, run.run_id), read_xcom)
            except Exception as exc:  # the table must still be printed
                state, produced = "error", f"{type(exc).__name__}: {exc}"[:80]
            label = f"{dag_id} (dry run)" if (conf or {}).get("dry_run") else dag_id
            rows.append((label, state, time.monotonic() - started, produced))

    _print_table(rows, len(sandbox.mails))
    print("\nThe backup catalog (GET /backups/api/summary; the page: http://localhost:8080/backups/ once scripts/stack.sh is up):")
    from airflow_backup_provider.plugins.catalog_data import print_summary

    print_summary()
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    return 0 if rows and all(state == "success" for _, state, _, _ in rows) else 1


def _produced(dag, run_id: str, states: dict[str, str], read_xcom) -> str:
    from airflow_backup_provider.operators.report import OUTCOME_KEY

    ids, total, details, verdicts = [], 0, [], []
    for key, state in sorted(states.items()):
        if key == "report":
            continue
        task_id, _, index = key.partition("[")
        outcome = read_xcom(dag.dag_id, run_id, task_id, OUTCOME_KEY, int(index.rstrip("]")) if index else -1)
        verdicts += [f"{task_id} {item['verdict']}" for item in (outcome or {}).get("produced", []) if "verdict" in item]
        if state != "success":
            continue
        for item in (outcome or {}).get("produced", []):
            ids.append(str(item.get("id")))
            total += int(item.get("size") or 0)
        if outcome and outcome.get("detail") and outcome.get("status") in ("skipped", "dry_run", "done"):
            details.append(f"{outcome['status']}: {outcome['detail']}")
    verdict = f"verdict: {', '.join(sorted(set(verdicts)))}; " if verdicts else ""  # a drill's
    if not ids:
        return verdict + ("; ".join(details[:2])[:160] if details else "-")
    shown = ", ".join(ids[:3]) + (f" +{len(ids) - 3} more" if len(ids) > 3 else "")
    return f"{verdict}{len(ids)} item(s), {total} bytes: {shown}"


def _print_table(rows, mail_count: int) -> None:
    header = ("DAG", "state", "duration", "produced")
    widths = [max(len(header[0]), *(len(r[0]) for r in rows)) if rows else 3, 8, 9, 0]
    print()
    print(f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]:>{widths[2]}}  {header[3]}")
    print(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * widths[2]}  {'-' * 8}")
    for dag_id, state, seconds, produced in rows:
        print(f"{dag_id:<{widths[0]}}  {state:<{widths[1]}}  {seconds:>8.1f}s  {produced}")
    ok = sum(1 for r in rows if r[1] == "success")
    print(f"\n{ok} of {len(rows)} DAG runs succeeded; {mail_count} mail(s) reached the sandbox SMTP server.")


if __name__ == "__main__":
    sys.exit(main())
