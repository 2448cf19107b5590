"""How DAG parsing scales with the clusters file.

Parses dags/backup_dags.py the way the dag-processor does (a process with Airflow already
imported runs the DAG file) for a generated clusters file of 200 entries and of 1 entry, both in
this run, and prints the ratio (goal: at most 3). Entries are copies of the example file's
entries, cycled over every kind, renamed. Each measurement is the median of 3 fresh processes.

    .venv/bin/python bench/parse.py [--entries 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CHILD = r"""
import json, sys, time
import airflow  # the dag-processor has Airflow imported before it parses a file
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "dags": len(bag.dags), "tasks": sum(len(d.tasks) for d in bag.dags.values()), "errors": len(bag.import_errors)}))
"""


def generated_clusters(count: int) -> dict:
    example = yaml.safe_load((REPO / "dags" / "clusters.yaml").read_text())
    templates = example.get("entries") or []
    if not templates:
        raise SystemExit("bench/parse.py: dags/clusters.yaml has no entries to copy")
    entries = []
    for i in range(count):
        entry = dict(templates[i % len(templates)])
        entry["name"] = f"{entry['name']}-{i:04d}"
        entries.append(entry)
    return {**example, "entries": entries}


def measure(clusters_path: Path, home: Path) -> dict:
    env = {
        **os.environ,
        "BACKUP_CLUSTERS_FILE": str(clusters_path),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO / "dags" / "backup_dags.py")],
        capture_output=True, text=True, env=env, check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        results = {}
        for count in (1, args.entries):
            path = tmp_path / f"clusters-{count}.yaml"
            path.write_text(yaml.safe_dump(generated_clusters(count), sort_keys=False))
            runs = [measure(path, tmp_path) for _ in range(args.repeat)]
            assert all(r["errors"] == 0 for r in runs), runs
            results[count] = {**runs[0], "seconds": statistics.median(r["seconds"] for r in runs)}
        one, many = results[1], results[args.entries]
        print(f"1 entry:    {one['seconds']:.3f}s  ({one['dags']} DAGs, {one['tasks']} tasks)")
        print(f"{args.entries} entries: {many['seconds']:.3f}s  ({many['dags']} DAGs, {many['tasks']} tasks)")
        print(f"ratio {args.entries}/1 = {many['seconds'] / one['seconds']:.2f}  (goal <= 3)")


if __name__ == "__main__":
    main()
