#!/usr/bin/env python3
"""Simulated `nodetool` of a sandbox Cassandra node (flush, snapshot, listsnapshots, clearsnapshot,
status), printing the texts of reference/cassandra.md.

State (all on disk, so that SSH sessions and tests see the same node):
    $SANDBOX_NODE_ROOT/state/cassandra/config.json   data_dir, version, incremental_backups, peers,
                                                     indexes ({"ks.table": [index, ...]}), fail
    $SANDBOX_NODE_ROOT/state/cassandra/memtable/<keyspace>/<table>.bin   unflushed writes
    <data_dir>/<keyspace>/<table>-<id>/...           SSTables, .<index>/ (2i SSTables),
                                                     snapshots/<tag>/[.<index>/], backups/[.<index>/]

Knob: config "fail": {"<command>": "<message>"} makes that command fail like nodetool does
(`connect` as message: the JMX connection error). `cassandra_sim` (same folder) writes the state.
"""

import hashlib
import json
import os
import shutil
import sys
import zlib
from datetime import UTC, datetime

SYSTEM_KEYSPACES = ("system", "system_schema", "system_auth", "system_distributed", "system_traces")
COMPONENTS = ("Data.db", "Index.db", "Summary.db", "Filter.db", "Statistics.db", "CompressionInfo.db", "Digest.crc32", "TOC.txt")


def state_dir():
    root = os.environ.get("SANDBOX_NODE_ROOT") or os.getcwd()
    path = os.path.join(root, "state", "cassandra")
    os.makedirs(path, exist_ok=True)
    return path


def load_config():
    path = os.path.join(state_dir(), "config.json")
    config = {}
    if os.path.exists(path):
        with open(path) as f:
            config = json.load(f)
    root = os.environ.get("SANDBOX_NODE_ROOT") or os.getcwd()
    config.setdefault("data_dir", os.path.join(root, "cassandra", "data"))
    config.setdefault("version", "4.1")
    config.setdefault("incremental_backups", True)
    config.setdefault("datacenter", "datacenter1")
    config.setdefault("rack", "rack1")
    config.setdefault("address", os.environ.get("SANDBOX_NODE_ADDRESS", "127.0.0.1"))
    config.setdefault("peers", [])
    config.setdefault("fail", {})
    return config


def save_config(config):
    path = os.path.join(state_dir(), "config.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def table_id(keyspace, table):
    # The same table has the same id on every node of a cluster, as in Cassandra.
    return hashlib.md5(f"{keyspace}.{table}".encode()).hexdigest()  # noqa: S324 - an id, not security


def sstable_prefix(config):
    return "mc" if str(config["version"]).startswith("3") else "nb"


def keyspaces(config):
    data_dir = config["data_dir"]
    if not os.path.isdir(data_dir):
        return []
    return sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))


def table_dirs(config, keyspace):
    path = os.path.join(config["data_dir"], keyspace)
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))


def fail_if_asked(config, command):
    message = config["fail"].get(command)
    if not message:
        return
    if message == "connect":
        print(
            "nodetool: Failed to connect to '127.0.0.1:7199' - ConnectException: "
            "'Connection refused (Connection refused)'.",
            file=sys.stderr,
        )
        sys.exit(1)
    error(message)


def error(message, code=2):
    print(f"error: {message}", file=sys.stderr)
    print("-- StackTrace --", file=sys.stderr)
    print(f"java.io.IOException: {message}", file=sys.stderr)
    print("\tat org.apache.cassandra.service.StorageService.takeSnapshot(StorageService.java:3889)", file=sys.stderr)
    sys.exit(code)


def generation_numbers(table_path, subfolder=""):
    gens = set()
    for folder in (os.path.join(table_path, subfolder), os.path.join(table_path, "backups", subfolder)):
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                parts = name.split("-")
                if len(parts) >= 4 and parts[1].isdigit():
                    gens.add(int(parts[1]))
    return gens


def index_names(config, keyspace, table_dir_name):
    """The table's secondary indexes (`cassandra_sim index`): each keeps its SSTables in the
    hidden sub-folder `<table dir>/.<index>/`, as Cassandra's built-in 2i does."""
    table = table_dir_name.rsplit("-", 1)[0]
    return sorted((config.get("indexes") or {}).get(f"{keyspace}.{table}", []))


def write_sstable(config, keyspace, table_dir_name, data):
    names = write_sstable_in(config, keyspace, table_dir_name, "", data)
    for index in index_names(config, keyspace, table_dir_name):
        # an index SSTable holds the indexed values of the same rows: smaller, derived from them
        index_data = b"".join(hashlib.sha256(data[i : i + 64]).digest()[:8] for i in range(0, len(data), 64))
        names += write_sstable_in(config, keyspace, table_dir_name, "." + index, index_data)
    return names


def write_sstable_in(config, keyspace, table_dir_name, subfolder, data):
    """One SSTable (every component) in the table folder or its index sub-folder `subfolder`,
    hard-linked into `backups/<subfolder>/` when incremental backups are on."""
    table_path = os.path.join(config["data_dir"], keyspace, table_dir_name)
    if subfolder:
        os.makedirs(os.path.join(table_path, subfolder), exist_ok=True)
    generation = max(generation_numbers(table_path, subfolder), default=0) + 1
    prefix = f"{sstable_prefix(config)}-{generation}-big-"
    contents = {
        "Data.db": data,
        "Index.db": hashlib.sha256(data).digest() * 4,
        "Summary.db": len(data).to_bytes(8, "big") + b"summary",
        "Filter.db": hashlib.sha1(data).digest() * 2,  # noqa: S324
        "Statistics.db": json.dumps({"rows": len(data) // 64, "generation": generation}).encode(),
        "CompressionInfo.db": b"LZ4Compressor\x00" + len(data).to_bytes(8, "big"),
        "Digest.crc32": str(zlib.crc32(data)).encode(),
        "TOC.txt": "\n".join(COMPONENTS).encode() + b"\n",
    }
    names = []
    for component, content in contents.items():
        name = os.path.join(subfolder, prefix + component) if subfolder else prefix + component
        path = os.path.join(table_path, name)
        with open(path + ".tmp", "wb") as f:
            f.write(content)
        os.replace(path + ".tmp", path)
        names.append(name)
    if config.get("incremental_backups"):
        backups = os.path.join(table_path, "backups", subfolder) if subfolder else os.path.join(table_path, "backups")
        os.makedirs(backups, exist_ok=True)
        for name in names:
            os.link(os.path.join(table_path, name), os.path.join(table_path, "backups", name))
    return names


def flush(config, keyspace=None, tables=()):
    memtables = os.path.join(state_dir(), "memtable")
    for ks in keyspaces(config):
        if keyspace and ks != keyspace:
            continue
        for tdir in table_dirs(config, ks):
            table = tdir.rsplit("-", 1)[0]
            if tables and table not in tables:
                continue
            memtable = os.path.join(memtables, ks, table + ".bin")
            if os.path.exists(memtable) and os.path.getsize(memtable) > 0:
                with open(memtable, "rb") as f:
                    data = f.read()
                write_sstable(config, ks, tdir, data)
                os.remove(memtable)


def cmd_flush(config, args):
    fail_if_asked(config, "flush")
    keyspace = args[0] if args else None
    if keyspace and keyspace not in keyspaces(config):
        error(f"Keyspace [{keyspace}] does not exist.")
    flush(config, keyspace, tuple(args[1:]))


def parse_tag(args):
    tag, rest, all_flag = None, [], False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-t", "--tag"):
            tag = args[i + 1]
            i += 2
            continue
        if arg.startswith("--tag="):
            tag = arg.split("=", 1)[1]
        elif arg == "--all":
            all_flag = True
        else:
            rest.append(arg)
        i += 1
    return tag, rest, all_flag


def snapshot_folders(config, tag, targets):
    for ks in targets:
        for tdir in table_dirs(config, ks):
            yield ks, tdir, os.path.join(config["data_dir"], ks, tdir, "snapshots", tag)


def cmd_snapshot(config, args):
    fail_if_asked(config, "snapshot")
    tag, targets, _ = parse_tag(args)
    if not tag:
        tag = str(int(datetime.now(UTC).timestamp() * 1000))
    for ks in targets:
        if ks not in keyspaces(config):
            error(f"Keyspace {ks} does not exist")
    label = ", ".join(targets) if targets else "all keyspaces"
    targets = targets or keyspaces(config)
    if any(os.path.exists(folder) for _, _, folder in snapshot_folders(config, tag, targets)):
        error(f"Snapshot {tag} already exists")
    for ks in targets:
        flush(config, ks)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    for ks, tdir, folder in snapshot_folders(config, tag, targets):
        os.makedirs(folder)
        table_path = os.path.dirname(os.path.dirname(folder))
        data_files = []
        for name in sorted(os.listdir(table_path)):
            source = os.path.join(table_path, name)
            if os.path.isfile(source):
                os.link(source, os.path.join(folder, name))
                if name.endswith("-Data.db"):
                    data_files.append(name)
        # each index's SSTables go to `snapshots/<tag>/.<index>/` (no manifest or schema of their own)
        for index in index_names(config, ks, tdir):
            index_path = os.path.join(table_path, "." + index)
            os.makedirs(os.path.join(folder, "." + index))
            for name in sorted(os.listdir(index_path)) if os.path.isdir(index_path) else []:
                if os.path.isfile(os.path.join(index_path, name)):
                    os.link(os.path.join(index_path, name), os.path.join(folder, "." + index, name))
        manifest = {"files": data_files}
        if not str(config["version"]).startswith("3"):
            manifest.update({"created_at": created, "expires_at": None})
        with open(os.path.join(folder, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        table = tdir.rsplit("-", 1)[0]
        if ks in SYSTEM_KEYSPACES:
            continue  # Cassandra writes no schema.cql for its own keyspaces
        with open(os.path.join(folder, "schema.cql"), "w") as f:
            f.write(
                f"CREATE TABLE IF NOT EXISTS {ks}.{table} (\n    id uuid PRIMARY KEY,\n    value blob\n)"
                f" WITH ID = {tdir.rsplit('-', 1)[1]};\n"
            )
    print(f"Requested creating snapshot(s) for [{label}] with snapshot name [{tag}] and options {{skipFlush=false}}")
    print(f"Snapshot directory: {tag}")


def folder_size(path):
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path) if os.path.isfile(os.path.join(path, n)))


def format_size(value, units=("KB", "MB", "GB", "TB")):
    def decimal(v):
        return f"{v:.2f}".rstrip("0").rstrip(".") or "0"

    if value < 1024:
        return f"{decimal(value)} bytes"
    for power, unit in enumerate(units, start=1):
        if value < 1024 ** (power + 1) or power == len(units):
            return f"{decimal(value / 1024**power)} {unit}"


def table_text(rows, separator="  "):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append(separator.join(cells).rstrip())
    return lines


def cmd_listsnapshots(config, args):
    fail_if_asked(config, "listsnapshots")
    new_format = tuple(int(p) for p in str(config["version"]).split(".")[:2]) >= (4, 1)
    header = ["Snapshot name", "Keyspace name", "Column family name", "True size", "Size on disk"]
    if new_format:
        header.append("Creation time")
    rows, total = [], 0
    for ks in keyspaces(config):
        for tdir in table_dirs(config, ks):
            table_path = os.path.join(config["data_dir"], ks, tdir)
            snaps = os.path.join(table_path, "snapshots")
            if not os.path.isdir(snaps):
                continue
            for tag in sorted(os.listdir(snaps)):
                folder = os.path.join(snaps, tag)
                on_disk = folder_size(folder)
                true_size = sum(
                    os.path.getsize(os.path.join(folder, n))
                    for n in os.listdir(folder)
                    if n.endswith(".db") and not os.path.exists(os.path.join(table_path, n))
                )
                total += true_size
                row = [tag, ks, tdir.rsplit("-", 1)[0], format_size(true_size), format_size(on_disk)]
                if new_format:
                    try:
                        with open(os.path.join(folder, "manifest.json")) as f:
                            row.append(json.load(f).get("created_at") or "")
                    except (OSError, ValueError):
                        row.append("")
                rows.append(row)
    print("Snapshot Details: ")
    if not rows:
        print("There are no snapshots")
        return
    for line in table_text([header, *rows]):
        print(line)
    print()
    print(f"Total TrueDiskSpaceUsed: {format_size(total)}")
    print()


def cmd_clearsnapshot(config, args):
    fail_if_asked(config, "clearsnapshot")
    tag, targets, all_flag = parse_tag(args)
    if not tag and not all_flag:
        if str(config["version"]).startswith("3"):
            all_flag = True
        else:
            print("error: Specify snapshot name or --all", file=sys.stderr)
            sys.exit(1)
    label = ", ".join(targets) if targets else "all keyspaces"
    for ks in targets or keyspaces(config):
        if ks not in keyspaces(config):
            continue
        for tdir in table_dirs(config, ks):
            snaps = os.path.join(config["data_dir"], ks, tdir, "snapshots")
            if not os.path.isdir(snaps):
                continue
            for name in os.listdir(snaps):
                if all_flag or name == tag:
                    shutil.rmtree(os.path.join(snaps, name))
    if all_flag:
        print(f"Requested clearing snapshot(s) for [{label}] with [all snapshots]")
    else:
        print(f"Requested clearing snapshot(s) for [{label}] with snapshot name [{tag}]")


def node_load(config):
    total = 0
    for root, _dirs, files in os.walk(config["data_dir"]):
        if "/snapshots" in root or root.endswith("/backups"):
            continue
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def host_id(address):
    digest = hashlib.sha256(address.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def cmd_status(config, args):
    fail_if_asked(config, "status")
    nodes = [{"address": config["address"], "status": "UN", "load": None}]
    nodes += [p for p in config["peers"] if p.get("address") != config["address"]]
    nodes.sort(key=lambda n: n["address"])
    width = max(9, *(len(n["address"]) for n in nodes))
    owns = f"{100 / len(nodes):.1f}%"
    line = "{:<2}  {:<WIDTH}  {:<9}  {:<6}  {:<16}  {:<36}  {}".replace("WIDTH", str(width))
    dc = config["datacenter"]
    print(f"Datacenter: {dc}")
    print("=" * (len(dc) + 12))
    print("Status=Up/Down")
    print("|/ State=Normal/Leaving/Joining/Moving")
    print(line.format("--", "Address", "Load", "Tokens", "Owns (effective)", "Host ID", "Rack").rstrip())
    for n in nodes:
        load = n.get("load") or format_size(node_load(config), ("KiB", "MiB", "GiB", "TiB"))
        print(line.format(n.get("status", "UN"), n["address"], load, "16", owns, host_id(n["address"]), config["rack"]))
    print()


COMMANDS = {
    "flush": cmd_flush,
    "snapshot": cmd_snapshot,
    "listsnapshots": cmd_listsnapshots,
    "clearsnapshot": cmd_clearsnapshot,
    "status": cmd_status,
}


def main(argv):
    # nodetool's connection options come before the command: skip them
    args = list(argv)
    while args and args[0] in ("-h", "--host", "-p", "--port", "-u", "--username", "-pw", "--password"):
        args = args[2:]
    if not args or args[0] not in COMMANDS:
        print(f"nodetool: Found unexpected parameters: {args}", file=sys.stderr)
        print("See 'nodetool help' or 'nodetool help <command>'.", file=sys.stderr)
        return 1
    COMMANDS[args[0]](load_config(), args[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
