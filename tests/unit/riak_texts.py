"""The exact texts of ../shared/reference/riak.md (Riak KV 2.x), shared by the parser tests and
the simulator's tests: parser and simulated tools must agree letter for letter."""

TRANSFERS_BUSY = """\
'riak@10.0.0.3' waiting to handoff 6 partitions
'riak@10.0.0.2' does not have 12 primary partitions running
Nodes ['riak@10.0.0.4'] are currently down.

Active Transfers:

transfer type: hinted_handoff
vnode type: riak_kv_vnode
partition: 1004782375664995756265033322492444576013453623296
started: 2026-11-20 02:11:05 [1.02 s ago]
last update: 2026-11-20 02:11:06 [21.30 ms ago]
total size: 61348 bytes
objects transferred: 120
                         1140 Objs/s
  riak@10.0.0.3        =======================>  riak@10.0.0.1
       |=======================                      |  51%
                        1.23 MB/s
"""

TRANSFERS_IDLE = """\
No transfers active

Active Transfers:

"""

TRANSFERS_FAILED = "Transfers failed, see log for details\n"

PING_UP = "pong\n"
PING_DOWN = "Node 'riak@10.0.0.1' not responding to pings.\n"
STOP_OK = "ok\n"
START_ALREADY_RUNNING = "Node is already running!\n"
WAIT_FOR_SERVICE = "riak_kv is not up: []\nriak_kv is not up: []\nriak_kv is up\n"
