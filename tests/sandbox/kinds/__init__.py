"""Per-kind demo support: `prepare(sandbox, entry) -> entry` and `demo_runs(entry) -> [(dag_id, conf)]`."""
