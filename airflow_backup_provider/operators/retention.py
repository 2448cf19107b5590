"""The one retention task of every kind: plan, then re-check each item just before deleting it.

A kind's retention operator subclasses :class:`RetentionOperator` (beside its own base, for the
hooks) and answers three questions:

* :meth:`~RetentionOperator.list_groups`: its backups as :class:`~airflow_backup_provider.retention.BackupItem`,
  in groups judged separately (one per EBS volume, one for a whole S3 prefix);
* :meth:`~RetentionOperator.reread`: one item as it is *now* (None when it is gone);
* :meth:`~RetentionOperator.delete_item`: delete one item.

The base does the rest, the same way for every kind: the policy (the entry's ``RetentionPolicy``)
planned with :func:`~airflow_backup_provider.retention.plan_retention` as of the run's date, a dry
run that prints the plan and deletes nothing, and for every item it is about to delete a fresh
re-read of that item and of the newest complete backup, checked with
:func:`~airflow_backup_provider.retention.delete_refusals` (ours, complete, not newer than the
run's date, not the newest complete, unchanged). A failed check refuses that one delete; the
others go on, and the task fails at the end naming each refused item and why (DESIGN.md,
safety invariant 4: a delete never relies on one check made before it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_backup_provider import dates, retention
from airflow_backup_provider.config import RetentionPolicy
from airflow_backup_provider.operators.base import BackupOperator
from airflow_backup_provider.retention import BackupItem, RetentionPlan


@dataclass
class RetentionGroup:
    """Backups judged together. ``leftovers_before``: incomplete items of ours older than this
    are a failed run's leftovers and are deleted too (None: never)."""

    label: str
    items: list[BackupItem]
    leftovers_before: datetime | None = None
    context: Any = None  # whatever the kind needs again to re-read or delete (e.g. a listing)


@dataclass
class RetentionRun:
    """What one retention task planned, deleted and refused; the kind turns it into its result."""

    as_of: datetime
    dry_run: bool
    groups: dict[str, RetentionGroup] = field(default_factory=dict)
    plans: dict[str, RetentionPlan] = field(default_factory=dict)
    deleted: dict[str, Any] = field(default_factory=dict)  # id -> what delete_item returned
    would_delete: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # planned, but already gone when re-read
    refused: dict[str, list[str]] = field(default_factory=dict)  # id -> reasons

    @property
    def kept(self) -> list[str]:
        return [i for plan in self.plans.values() for i in plan.keep_ids if i not in self.leftovers]

    @property
    def pruned(self) -> list[str]:
        return [i for plan in self.plans.values() for i in plan.prune_ids]

    def detail(self) -> str:
        parts = [f"kept {len(self.kept)}"]
        if self.dry_run:
            parts.append(f"would delete {len(self.would_delete)}: {', '.join(self.would_delete) or '-'}")
        else:
            parts.append(f"deleted {len(self.deleted)}: {', '.join(self.deleted) or '-'}")
        if self.gone:
            parts.append(f"already gone {', '.join(self.gone)}")
        if self.refused:
            parts.append(f"REFUSED {refusal_text(self.refused)}")
        return "; ".join(parts)


def refusal_text(refused: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{item} ({', '.join(reasons)})" for item, reasons in refused.items())


def as_policy(policy: RetentionPolicy | Mapping[str, Any]) -> RetentionPolicy:
    """The entry's model as is; a mapping (a test, a hand-written DAG) is validated once, here."""
    return policy if isinstance(policy, RetentionPolicy) else RetentionPolicy.model_validate(policy)


class RetentionOperator(BackupOperator):
    """
    Apply the entry's retention policy as of the run's date; see the module docstring.

    :param policy: the entry's ``retention`` (a ``RetentionPolicy``).
    :param dry_run: ``"{{ params.dry_run }}"`` or a bool; None reads the run's ``dry_run`` param.
    """

    ui_color = "#ffe0e0"

    def __init__(self, *, policy: RetentionPolicy | Mapping[str, Any], dry_run: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = as_policy(policy)
        self.dry_run = dry_run

    # ---- what a kind supplies -------------------------------------------------------------------

    def list_groups(self, context: Any, as_of: datetime, dry_run: bool) -> list[RetentionGroup]:
        """Every backup of this entry as BackupItems, grouped; a dry run adds the backup the real
        run would make (:func:`~airflow_backup_provider.retention.planned_backup`)."""
        raise NotImplementedError

    def reread(self, group: RetentionGroup, item: BackupItem) -> BackupItem | None:
        """The item as it is now, read again from the store (None: it is gone)."""
        raise NotImplementedError

    def reread_many(self, group: RetentionGroup, items: Sequence[BackupItem]) -> dict[str, BackupItem | None]:
        """`items` as they are now, by id; a kind whose store answers for several ids at once
        (EC2's DescribeSnapshots) overrides this to read them in one call."""
        return {item.id: self.reread(group, item) for item in items}

    def delete_item(self, group: RetentionGroup, item: BackupItem) -> Any:
        """Delete one item; raise when the store says it failed."""
        raise NotImplementedError

    def after_deletes(self, run: RetentionRun) -> None:
        """Once every delete is done (e.g. ``bup gc``, or checking that nothing deleted is left)."""

    def result(self, context: Any, run: RetentionRun) -> Any:
        """The task's return value (its XCom), from what the run did."""
        return {"kept": run.kept, "deleted": list(run.deleted), "would_delete": run.would_delete}

    def outcome_node(self) -> str | None:
        return None

    def outcome_rows(self, context: Any, run: RetentionRun) -> list[dict[str, Any]]:
        return []

    def plan(self, group: RetentionGroup, as_of: datetime) -> RetentionPlan:
        # looked up on the module at call time: the one planner, whatever the kind
        return retention.plan_retention(group.items, self.policy, as_of)

    # ---- the same for every kind ----------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        run = RetentionRun(as_of=self.run_date(context), dry_run=self.is_dry_run(context))
        for group in self.list_groups(context, run.as_of, run.dry_run):
            plan = self.plan(group, run.as_of)
            run.groups[group.label], run.plans[group.label] = group, plan
            self.log.info("%s:\n%s", group.label, plan.table())
            # a dry run judges as the real run would: with the backup it would have made
            newest = retention.newest_complete(group.items, run.as_of, with_planned=run.dry_run)
            for decision in plan.prune:
                self._delete_checked(run, group, decision.item, newest)
            if group.leftovers_before is not None:
                for item in retention.leftovers(plan, group.leftovers_before):
                    self._delete_checked(run, group, item, newest, leftover=True)
        if run.deleted:
            self.after_deletes(run)
        rows = self.outcome_rows(context, run)
        status = "failed" if run.refused else ("dry_run" if run.dry_run else "done")
        self.record_outcome(context, status=status, node=self.outcome_node(), detail=run.detail(), rows=rows)
        if run.refused:
            raise AirflowFailException(
                f"retention refused to delete {len(run.refused)} item(s), changed or protected since the plan: "
                f"{refusal_text(run.refused)}"
            )
        return self.result(context, run)

    def _delete_checked(
        self, run: RetentionRun, group: RetentionGroup, item: BackupItem, newest: BackupItem | None, leftover: bool = False
    ) -> None:
        what = "leftover" if leftover else "item"
        if run.dry_run:
            # Nothing is re-read in a dry run; the plan's own state is checked the same way, so a
            # plan that would be refused shows up now and not at the real run.
            fresh, fresh_newest = item, newest
        else:
            others = [newest] if newest is not None and newest.id != item.id else []
            now = self.reread_many(group, [item, *others])
            fresh = now[item.id]
            if fresh is None:
                self.log.warning("%s %s: already gone, nothing to delete", what, item.id)
                run.gone.append(item.id)
                return
            fresh_newest = now[newest.id] if others else newest
        if leftover:
            reasons = retention.leftover_refusals(fresh, group.leftovers_before)
        else:
            reasons = retention.delete_refusals(item, fresh, run.as_of, fresh_newest, with_planned=run.dry_run)
        if reasons:
            self.log.error("refusing to delete %s %s: %s", what, item.id, ", ".join(reasons))
            run.refused[item.id] = reasons
            return
        if leftover:
            run.leftovers.append(item.id)
        if run.dry_run:
            self.log.info("dry run: would delete %s %s (%s)", what, item.id, dates.format_instant(item.created_at))
            run.would_delete.append(item.id)
            return
        run.deleted[item.id] = self.delete_item(group, fresh)
        self.log.info("deleted %s %s", what, item.id)


__all__ = ["RetentionGroup", "RetentionOperator", "RetentionRun", "as_policy", "refusal_text"]
