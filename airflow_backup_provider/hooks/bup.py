"""Run bup and dump commands on a host or on the backup server.

:class:`BupNodeHook` is the shared :class:`RemoteCommandHook` plus one thing bup's dumps need:
writing to the command's standard input. Secrets (database passwords from Airflow connections)
travel that way, so they never appear on a command line, in ``ps`` or in a log.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence

import paramiko

from airflow_backup_provider.hooks.remote import (
    CommandResult,
    RemoteCommandHook,
    RemoteTransportError,
)

# Runs as `sh -c DUMP_SCRIPT sh OUTPUT CMD ARGS...`. Reads NAME=value lines from stdin into the
# environment, runs the command with stdout into OUTPUT.partial, and renames it only on success:
# a failed dump never leaves a file that looks complete.
DUMP_SCRIPT = r"""
set -u
out=$1; shift
while IFS= read -r assignment; do
  [ -n "$assignment" ] && export "$assignment"
done
mkdir -p -- "$(dirname -- "$out")" || exit 1
if "$@" > "$out.partial"; then
  mv -f -- "$out.partial" "$out"
else
  rc=$?
  rm -f -- "$out.partial"
  exit $rc
fi
""".strip()


def dump_argv(output_path: str, argv: Sequence[str]) -> list[str]:
    return ["sh", "-c", DUMP_SCRIPT, "sh", output_path, *argv]


def env_lines(env: Mapping[str, str]) -> bytes:
    for name, value in env.items():
        if "\n" in value or "\x00" in value:
            raise ValueError(f"environment variable {name}: value must not contain a newline or NUL")
    return "".join(f"{name}={value}\n" for name, value in env.items()).encode()


class BupNodeHook(RemoteCommandHook):
    """A host or backup server that runs bup; adds :meth:`run_with_input`."""

    hook_name = "Backup bup node"

    def run_with_input(self, argv: Sequence[str], data: bytes, *, timeout: float | None = None) -> CommandResult:
        """Run `argv` with `data` on its stdin (then end of file)."""
        line = self.command_line(argv)
        if self.is_local:
            self.log.info("Running command locally: %s", line)
            try:
                done = subprocess.run(
                    shlex.split(line), input=data, capture_output=True, timeout=timeout, check=False
                )
            except subprocess.TimeoutExpired as exc:
                raise TimeoutError(f"{line} on localhost: no result within {timeout}s") from exc
            return CommandResult(
                "localhost", tuple(argv), line, done.returncode,
                done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"),
            )
        client = self.get_conn()
        self.log.info("Running command on %s: %s", self.target, line)
        try:
            stdin, stdout, stderr = client.exec_command(line, timeout=timeout)
            stdin.write(data)
            stdin.channel.shutdown_write()
            out = stdout.read()
            err = stderr.read()
            exit_code = stdout.channel.recv_exit_status()
        except TimeoutError as exc:
            self.close()
            raise TimeoutError(f"{line} on {self.target}: no output within {timeout}s") from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise RemoteTransportError(f"connection to {self.target} broke while running {line}: {exc}") from exc
        return CommandResult(
            self.target, tuple(argv), line, exit_code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        )
