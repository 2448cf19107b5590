"""Where a restore or a download may write: pure containment checks of absolute POSIX paths.

The callers resolve symlinks first, on the machine that is written to (``realpath -m`` over SSH,
``os.path.realpath`` on the worker), and compare both the paths as given and as resolved. Here
nothing is resolved: ``..`` is refused rather than collapsed, since behind a symlink it can mean
any folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class UnsafePathError(ValueError):
    """A path falls in (or holds) live data, or is not a plain absolute path."""


def normal_path(value: str, field: str = "path") -> str:
    """`value` with repeated ``/``, ``.`` parts and a trailing ``/`` dropped; ``..`` and NUL refused."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise UnsafePathError(f"{field}: value {value!r} must be an absolute path")
    if "\x00" in value:
        raise UnsafePathError(f"{field}: value {value!r} must not contain a NUL character")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"{field}: value {value!r} must not contain '..'")
    return "/" + "/".join(parts)


def is_inside(path: str, base: str) -> bool:
    """`path` is `base` or below it, part by part (``/database`` is not inside ``/data``)."""
    path, base = normal_path(path), normal_path(base)
    return base == "/" or path == base or path.startswith(base + "/")


@dataclass(frozen=True)
class Overlap:
    label: str  # what the protected path is, e.g. "paths (backed up)"
    protected: str
    inside: bool  # True: the path is in the protected one; False: it holds the protected one

    def describe(self) -> str:
        where = "is inside" if self.inside else "holds"
        return f"{where} {self.protected} ({self.label})"


def find_overlap(path: str, protected: Iterable[tuple[str, str]]) -> Overlap | None:
    """The first protected ``(label, path)`` that `path` is inside of, or that is inside `path`."""
    for label, base in protected:
        if is_inside(path, base):
            return Overlap(label, normal_path(base), True)
        if is_inside(base, path):
            return Overlap(label, normal_path(base), False)
    return None


def check_outside(
    field: str, value: str, protected: Iterable[tuple[str, str]], *, resolved: str | None = None, where: str = ""
) -> str:
    """Refuse `value` (and `resolved`, what it is after symlinks) when it overlaps a protected path.

    One error naming the field, the value and the protected path; returns the normal form of the
    path to write to (the resolved one when given).
    """
    protected = list(protected)
    on = f" on {where}" if where else ""
    for candidate in (value, resolved):
        if candidate is None:
            continue
        hit = find_overlap(normal_path(candidate, field), protected)
        if hit is not None:
            via = f" (it resolves to {normal_path(candidate)})" if candidate is resolved and resolved != value else ""
            raise UnsafePathError(
                f"{field}: value {value!r}{on}{via} {hit.describe()}: refused, that is live data; nothing was written"
            )
    return normal_path(resolved if resolved is not None else value, field)


def check_within(
    field: str, value: str, root: str, *, label: str, resolved: str | None = None, resolved_root: str | None = None
) -> str:
    """Refuse `value` unless it is `root` or inside it, compared as given when nothing is resolved,
    else as resolved (a symlink inside `root` may point anywhere). Returns the path to read."""
    given = normal_path(value, field)
    path, base = (given, normal_path(root)) if resolved is None else (resolved, resolved_root or root)
    if not is_inside(path, base):
        via = f" (it resolves to {normal_path(path)})" if normal_path(path) != given else ""
        raise UnsafePathError(f"{field}: value {value!r}{via} is not {normal_path(base)} ({label}) or inside it: refused")
    return normal_path(path)


def realpath_argv(paths: Iterable[str]) -> list[str]:
    """GNU ``realpath``: every path resolved (missing parts allowed), NUL-separated (names may hold newlines)."""
    return ["realpath", "-m", "-z", "--", *paths]


def parse_nul_list(stdout: str, count: int) -> list[str]:
    """The `count` NUL-terminated paths ``realpath -z`` printed."""
    items = stdout.split("\x00")
    if items and items[-1] == "":
        items.pop()
    if len(items) != count:
        raise ValueError(f"realpath printed {len(items)} path(s), expected {count}: {stdout!r}")
    return items
