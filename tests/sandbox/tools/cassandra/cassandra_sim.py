#!/usr/bin/env python3
"""Drive the simulated Cassandra node (not a real Cassandra command): set it up, create tables,
write data (it becomes SSTables at the next `nodetool flush`), set failure knobs.

    cassandra_sim setup '{"data_dir": "...", "version": "4.1", "incremental_backups": true, "peers": [...]}'
    cassandra_sim create KEYSPACE TABLE [TABLE...]
    cassandra_sim index KEYSPACE TABLE INDEX   (a secondary index: SSTables in <table dir>/.<index>/)
    cassandra_sim write KEYSPACE TABLE BYTES [SEED]
    cassandra_sim fail COMMAND MESSAGE      (empty MESSAGE clears the knob)
"""

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import random
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_path = os.path.join(_here, "nodetool")
if not os.path.exists(_path):
    _path += ".py"
_loader = importlib.machinery.SourceFileLoader("sim_nodetool", _path)
_spec = importlib.util.spec_from_loader("sim_nodetool", _loader)
nodetool = importlib.util.module_from_spec(_spec)
_loader.exec_module(nodetool)


def make_bytes(size, seed):
    """Data that compresses like real rows: repeated structure with random parts."""
    rng = random.Random(seed)
    chunks, total = [], 0
    while total < size:
        row = (
            b"row:" + str(rng.randrange(10**12)).encode() + b"|name=user" + str(rng.randrange(1000)).encode()
            + b"|payload=" + rng.randbytes(48) + b"\n"
        )
        chunks.append(row)
        total += len(row)
    return b"".join(chunks)[:size]


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 1
    command, args = argv[0], argv[1:]
    config = nodetool.load_config()
    if command == "setup":
        config.update(json.loads(args[0]) if args else {})
        nodetool.save_config(config)
        os.makedirs(config["data_dir"], exist_ok=True)
    elif command == "create":
        keyspace, tables = args[0], args[1:]
        for table in tables:
            os.makedirs(
                os.path.join(config["data_dir"], keyspace, f"{table}-{nodetool.table_id(keyspace, table)}"),
                exist_ok=True,
            )
    elif command == "index":
        # a built-in secondary index: its SSTables live in `<table dir>/.<index>/`
        keyspace, table, index = args[0], args[1], args[2]
        table_path = os.path.join(config["data_dir"], keyspace, f"{table}-{nodetool.table_id(keyspace, table)}")
        if not os.path.isdir(table_path):
            print(f"unconfigured table {table}", file=sys.stderr)
            return 2
        indexes = dict(config.get("indexes") or {})
        indexes[f"{keyspace}.{table}"] = sorted({*indexes.get(f"{keyspace}.{table}", []), index})
        config["indexes"] = indexes
        nodetool.save_config(config)
        os.makedirs(os.path.join(table_path, "." + index), exist_ok=True)
    elif command == "write":
        keyspace, table, size = args[0], args[1], int(args[2])
        seed = args[3] if len(args) > 3 else hashlib.sha256(os.urandom(8)).hexdigest()
        if not os.path.isdir(os.path.join(config["data_dir"], keyspace, f"{table}-{nodetool.table_id(keyspace, table)}")):
            print(f"unconfigured table {table}", file=sys.stderr)
            return 2
        folder = os.path.join(nodetool.state_dir(), "memtable", keyspace)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, table + ".bin"), "ab") as f:
            f.write(make_bytes(size, seed))
    elif command == "fail":
        fail = dict(config.get("fail") or {})
        if len(args) > 1 and args[1]:
            fail[args[0]] = args[1]
        else:
            fail.pop(args[0], None)
        config["fail"] = fail
        nodetool.save_config(config)
    else:
        print(f"cassandra_sim: unknown command {command!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
