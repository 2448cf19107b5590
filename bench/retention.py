"""Plan retention for 100,000 snapshots; print the time divided by sorting the same list.

    .venv/bin/python bench/retention.py

Both timings are taken in this run, on the same list (best of several rounds). Goal: <= 20.
"""

from __future__ import annotations

import random
import sys
import timeit
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airflow_backup_provider.config import RetentionPolicy  # noqa: E402
from airflow_backup_provider.retention import BackupItem, plan_retention  # noqa: E402

COUNT = 100_000
GOAL = 20.0


def make_items(count: int, seed: int = 1) -> list[BackupItem]:
    rnd = random.Random(seed)
    start = datetime(2016, 1, 1, tzinfo=UTC)
    span = 10 * 365 * 24 * 3600
    items = []
    for n in range(count):
        items.append(
            BackupItem(
                id=f"snap-{n:08x}",
                created_at=start + timedelta(seconds=rnd.randrange(span)),
                complete=rnd.random() > 0.001,
                ours=rnd.random() > 0.01,
            )
        )
    rnd.shuffle(items)
    return items


def main() -> int:
    items = make_items(COUNT)
    as_of = datetime(2026, 1, 1, tzinfo=UTC)
    policy = RetentionPolicy(
        keep_last=10, keep_hourly=48, keep_daily=30, keep_weekly=26, keep_monthly=24, keep_yearly=10, keep_within="14d"
    )
    rounds = 5
    sort_time = min(timeit.repeat(lambda: sorted(items, key=lambda i: (i.created_at, i.id)), number=1, repeat=rounds))
    plan_time = min(timeit.repeat(lambda: plan_retention(items, policy, as_of), number=1, repeat=rounds))
    plan = plan_retention(items, policy, as_of)
    ratio = plan_time / sort_time
    print(f"items: {COUNT}, keep {len(plan.keep)}, prune {len(plan.prune)}")
    print(f"sort (key created_at, id): {sort_time * 1000:.1f} ms")
    print(f"plan_retention:            {plan_time * 1000:.1f} ms")
    print(f"ratio plan/sort: {ratio:.2f} (goal <= {GOAL:g}) {'OK' if ratio <= GOAL else 'OVER GOAL'}")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
