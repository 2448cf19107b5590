"""The sandbox's moto server, with EBS snapshots that can be held `pending` (or end in `error`).

Real EBS snapshots are `pending` for minutes; moto marks them `completed` at once. This wrapper
makes moto's snapshot a state-managed model (moto's own state manager, model name
``ec2::snapshot``, transition ``pending -> completed``), so tests drive it with moto's standard
API, for example::

    POST {moto_url}/moto-api/state-manager/set-transition
    {"model_name": "ec2::snapshot", "transition": {"progression": "manual", "times": 3}}

(stay `pending` for 3 DescribeSnapshots calls), and ``unset-transition`` to go back. The default
is ``immediate``: snapshots are `completed` at once, as with plain moto. A snapshot tagged
``sandbox:final-state=error`` ends in `error` instead of `completed`.

A copy made by CopySnapshot gets the arbitrary VolumeId EC2 gives copies (``vol-ffffffff``,
"should not be used for any purpose"), where moto keeps the source's volume. A source snapshot
tagged ``sandbox:refuse-copy-to=<region>`` cannot be copied into that region: CopySnapshot there
answers ``OptInRequired``, as a region the account has not enabled does.

Run as ``python tests/sandbox/moto_server.py -H 127.0.0.1 -p PORT`` (same options as moto_server).
"""

from __future__ import annotations

import copy
import sys

SNAPSHOT_MODEL = "ec2::snapshot"
COPY_VOLUME_ID = "vol-ffffffff"
REFUSE_COPY_TAG = "sandbox:refuse-copy-to"
FINAL_STATE_TAG = "sandbox:final-state"


def install() -> None:
    from moto.ec2.models import elastic_block_store as ebs
    from moto.moto_api import state_manager
    from moto.moto_api._internal.managed_state_model import ManagedState

    state_manager.register_default_transition(SNAPSHOT_MODEL, transition={"progression": "immediate"})

    original = ebs.Snapshot

    class ManagedSnapshot(original, ManagedState):
        __module__ = ebs.__name__  # moto's model registry derives the service from the module

        def __init__(self, *args, **kwargs):
            original.__init__(self, *args, **kwargs)
            ManagedState.__init__(self, SNAPSHOT_MODEL, [("pending", "completed")])

        @property
        def status(self):
            tags = {t["key"]: t["value"] for t in self.get_tags()} if self.id else {}
            self._transitions = [("pending", tags.get(FINAL_STATE_TAG, "completed"))]
            return ManagedState.status.fget(self)

        @status.setter
        def status(self, value):
            self._status = value

        @property
        def progress(self) -> str:
            return "100%" if self._status == "completed" else "40%"

    ebs.Snapshot = ManagedSnapshot
    describe = ebs.EBSBackend.describe_snapshots

    def describe_snapshots(self, snapshot_ids=None, filters=None):
        found = describe(self, snapshot_ids=snapshot_ids, filters=filters)
        for snapshot in found:
            if isinstance(snapshot, ManagedState):
                snapshot.advance()
        return found

    ebs.EBSBackend.describe_snapshots = describe_snapshots
    copy_snapshot = ebs.EBSBackend.copy_snapshot

    def copy_snapshot_as_ec2_does(self, source_snapshot_id, source_region, *args, **kwargs):
        from moto.ec2.exceptions import EC2ClientError
        from moto.ec2.models import ec2_backends

        source = ec2_backends[self.account_id][source_region].get_snapshot(source_snapshot_id)
        if {t["key"]: t["value"] for t in source.get_tags()}.get(REFUSE_COPY_TAG) == self.region_name:
            raise EC2ClientError("OptInRequired", "You are not subscribed to this service. Please go to http://aws.amazon.com to subscribe.")
        snapshot = copy_snapshot(self, source_snapshot_id, source_region, *args, **kwargs)
        volume = copy.copy(snapshot.volume)
        volume.id = COPY_VOLUME_ID
        snapshot.volume = volume
        return snapshot

    ebs.EBSBackend.copy_snapshot = copy_snapshot_as_ec2_does


def main() -> None:
    install()
    from moto.server import main as moto_main

    sys.exit(moto_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
