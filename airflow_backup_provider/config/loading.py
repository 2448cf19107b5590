"""Loading the clusters file: YAML with its refusals (a key written twice, an alias bomb, a value
that contains itself), then every entry validated on its own against the union of the kinds.

Loading never lets one broken entry hide the others: :func:`load_clusters_file` returns the
valid entries and, separately, one :class:`EntryError` per broken entry naming its fields and values.
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from airflow_backup_provider.config.common import QUOTE_LIMIT, Defaults, EntryBase, StrictModel
from airflow_backup_provider.config.common import clip as _clip

CLUSTERS_FILE_ENV = "BACKUP_CLUSTERS_FILE"
DEFAULT_CLUSTERS_FILE = Path(__file__).resolve().parent.parent.parent / "dags" / "clusters.yaml"


class ClustersFileError(ValueError):
    """The clusters file as a whole cannot be read (missing, not YAML, not a mapping)."""


class _BoundedRepr(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 8
        self.maxstring = self.maxother = QUOTE_LIMIT

    def repr1(self, x: Any, level: int) -> str:
        if isinstance(x, dict) and type(x) is not dict:  # the loader's mapping: bounded like a dict
            return self.repr_dict(x, level)
        return super().repr1(x, level)

    def repr_str(self, x: str, level: int) -> str:
        return repr(x[: self.maxstring + 1])

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:  # repr() of a huge int is slow, and refused beyond 4300 digits
            return f"<an integer of about {int(x.bit_length() * 0.30103) + 1} digits>"
        return repr(x)


_REPR = _BoundedRepr()


def _quote(value: Any) -> str:
    """repr() of `value`, at most QUOTE_LIMIT characters, ending in '…' when cut."""
    return _clip(_REPR.repr(value))


class EntryError(StrictModel):
    """One broken entry: where it is, and every field that is wrong, with its value."""

    index: int
    name: str
    kind: str
    problems: list[str]

    def __str__(self) -> str:
        label = f"entry #{self.index} {self.name!r} (kind {self.kind!r})"
        return f"{label}: " + "; ".join(self.problems)


class ClustersFile(StrictModel):
    path: str
    defaults: Defaults  # the valid defaults; the invalid ones are in defaults_errors
    entries: list[Any]  # validated Entry models
    errors: list[EntryError]
    defaults_errors: list[str] = []  # each also counts against every entry that uses the default


# At most this many values (list items, mapping values, scalars; a string one per started KiB)
# in one entry or default once YAML aliases are expanded: validation walks the expanded tree, so
# an alias bomb (a few lines that expand to 10**9 values) must be refused before it.
MAX_VALUES = 100_000
# an entry (a default) reports at most this many problems
MAX_PROBLEMS = 20


class _Mapping(dict):
    """A YAML mapping as the loader builds it, with the keys it found more than once."""

    repeated_keys: list[tuple[Any, str]]


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that keeps what one entry does wrong to that entry.

    A key written twice in one mapping is recorded (PyYAML keeps the last one silently), and a
    number or date that Python cannot build (`2026-13-45`, an integer of 5000 digits) stays the
    string it was, so that validation names its field and value instead of the whole file failing.
    """

    def construct_yaml_map(self, node: yaml.MappingNode):
        data = _Mapping()
        data.repeated_keys = []
        yield data
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue  # keys merged in with `<<` may be overridden; complex keys fail in construct_mapping
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first_line:
                data.repeated_keys.append(
                    (key, f"key {_quote(key)} is written twice in one mapping (lines {first_line[key]} and {line})")
                )
            else:
                first_line[key] = line
        data.update(self.construct_mapping(node))

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return node.value

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return node.value


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


class _Refused(Exception):
    pass


def _inspect(value: Any, sizes: dict[int, int], active: set[int], repeated: list[str]) -> int:
    """The size of `value` with aliases expanded (memoized, so linear in the distinct objects);
    collects repeated keys; raises _Refused beyond MAX_VALUES or when a value contains itself."""
    if isinstance(value, str):
        return 1 + len(value) // 1024
    if not isinstance(value, dict | list):
        return 1
    ident = id(value)
    if ident in sizes:
        return sizes[ident]
    if ident in active:
        raise _Refused("contains itself (a recursive YAML alias)")
    active.add(ident)
    repeated.extend(text for _, text in getattr(value, "repeated_keys", ()))
    total = 1
    for child in value.values() if isinstance(value, dict) else value:
        total += _inspect(child, sizes, active, repeated)
        if total > MAX_VALUES:
            raise _Refused(f"expands to more than {MAX_VALUES} values (YAML aliases?): refused unread")
    active.discard(ident)
    sizes[ident] = total
    return total


def _precheck(mapping: dict[Any, Any]) -> dict[Any, list[str]]:
    """Problems found before validation, by top-level key: repeated keys, and values too big to
    validate (the fields kept add up to at most MAX_VALUES)."""
    problems: dict[Any, list[str]] = {}
    for key, text in getattr(mapping, "repeated_keys", ()):
        problems.setdefault(key, []).append(text)
    sizes: dict[int, int] = {}
    total = 1
    for key, value in mapping.items():
        repeated: list[str] = []
        try:
            size = _inspect(value, sizes, set(), repeated)
            if total + size > MAX_VALUES:
                raise _Refused(f"makes its mapping expand to more than {MAX_VALUES} values (YAML aliases?): refused unread")
            total += size
        except _Refused as exc:
            repeated = [str(exc)]
        except RecursionError:
            repeated = ["nests too deeply"]
        if repeated:
            problems.setdefault(key, []).extend(f"field {_quote(key)}: {text}" for text in repeated)
    return problems


def _describe(error: dict[str, Any]) -> str:
    location = _clip(".".join(str(part) for part in error["loc"]))
    message = _clip(error["msg"].removeprefix("Value error, "), 2 * QUOTE_LIMIT)
    if error["type"] == "extra_forbidden":
        return f"field {location!r}: unknown key (a typo?) with value {_quote(error['input'])}"
    if error["type"] == "missing":
        return f"field {location!r}: is required"
    if not location:
        return message
    if "password" in message:  # never echo a secret into logs and the UI's import errors
        return f"field {location!r}: value <redacted> {message}"
    return f"field {location!r}: value {_quote(error['input'])} {message}"


def _problems(exc: ValidationError, *, tagged: bool = False) -> list[str]:
    """One text per error; `tagged`: errors of the kinds' union, whose locations start with the
    kind (the union's tag), left out as the entry's kind is named beside them."""
    errors = exc.errors(include_url=False)
    return [_describe({**e, "loc": e["loc"][1:]} if tagged else e) for e in errors]


def _bounded(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"and {len(problems) - MAX_PROBLEMS} more problems"]


def resolve_clusters_file(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get(CLUSTERS_FILE_ENV) or DEFAULT_CLUSTERS_FILE)


def load_clusters_file(path: str | os.PathLike | None = None) -> ClustersFile:
    """Read and validate the clusters file. Broken entries are reported, not raised."""
    resolved = resolve_clusters_file(path)
    try:
        raw = yaml.load(resolved.read_text(), Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except OSError as exc:
        raise ClustersFileError(f"clusters file {str(resolved)!r}: cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ClustersFileError(
            f"clusters file {str(resolved)!r}: is not valid YAML: {_clip(str(exc), 5 * QUOTE_LIMIT)}"
        ) from exc
    except RecursionError as exc:
        raise ClustersFileError(f"clusters file {str(resolved)!r}: nests too deeply to be read") from exc
    return parse_clusters(raw, str(resolved))


def _check_defaults(raw_defaults: Any) -> tuple[Defaults, dict[Any, list[str]]]:
    """The valid part of `defaults`, and the problems of the rest by field (None: all fields).

    A bad default is not applied: each entry that would use it (does not set the field itself)
    is refused with the default's problem, and the entries that set the field still load.
    """
    if not isinstance(raw_defaults, dict):
        return Defaults(), {None: [f"must be a mapping, got {_quote(raw_defaults)}"]}
    problems = _precheck(raw_defaults)
    candidate = {k: v for k, v in raw_defaults.items() if k not in problems}
    while True:
        try:
            return Defaults.model_validate(candidate), problems
        except ValidationError as exc:
            bad = {}
            for error in exc.errors(include_url=False):
                bad.setdefault(error["loc"][0] if error["loc"] else None, []).append(_describe(error))
            if None in bad or not set(bad) <= set(candidate):  # not a field's problem: refuse them all
                problems.setdefault(None, []).extend(_problems(exc))
                return Defaults(), problems
            for field, texts in bad.items():
                problems.setdefault(field, []).extend(texts)
                candidate.pop(field)


def _label(value: Any) -> str:
    return _clip(value if isinstance(value, str) else "?" if value is None else _quote(value), 80)


def parse_clusters(raw: Any, source: str = "<clusters file>") -> ClustersFile:
    # the registry imports the models of this package: imported here, not at the top, so that
    # either can be imported first
    from airflow_backup_provider import kinds

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ClustersFileError(f"clusters file {source!r}: must be a mapping with 'defaults' and 'entries'")
    unknown = set(raw) - {"defaults", "entries"}
    if unknown:
        raise ClustersFileError(
            f"clusters file {source!r}: unknown top-level key(s) {_quote(sorted(map(str, unknown)))}; "
            "expected 'defaults' and 'entries'"
        )
    for _, text in getattr(raw, "repeated_keys", ()):
        raise ClustersFileError(f"clusters file {source!r}: {text}")
    raw_defaults = raw.get("defaults") or {}
    defaults, defaults_problems = _check_defaults(raw_defaults)
    defaults_errors = [f"defaults: {text}" for texts in defaults_problems.values() for text in texts]
    raw_entries = raw.get("entries") or []
    if not isinstance(raw_entries, list):
        raise ClustersFileError(f"clusters file {source!r}: 'entries' must be a list")

    entries: list[EntryBase] = []
    errors: list[EntryError] = []
    dag_ids: dict[str, int] = {}
    explicit_defaults = defaults.model_dump(exclude_unset=True)
    for index, item in enumerate(raw_entries):
        name = _label(item.get("name")) if isinstance(item, dict) else "?"
        kind = _label(item.get("kind")) if isinstance(item, dict) else "?"

        def fail(problems: list[str], index=index, name=name, kind=kind) -> None:
            errors.append(EntryError(index=index, name=name, kind=kind, problems=_bounded(problems)))

        if not isinstance(item, dict):
            fail([f"must be a mapping, got {_quote(item)}"])
            continue
        if not isinstance(item.get("kind"), str) or item["kind"] not in kinds.KINDS:
            fail([f"field 'kind': value {_quote(item.get('kind'))} is not one of {sorted(kinds.KINDS)}"])
            continue
        # a bad default counts against every entry that would use it
        inherited = [
            f"defaults: {text}"
            for field, texts in defaults_problems.items()
            if field is None or field not in item
            for text in texts
        ]
        prechecked = _precheck(item)
        if prechecked:  # never validate (nor quote) what is refused unread
            fail([text for texts in prechecked.values() for text in texts] + inherited)
            continue
        data = {**explicit_defaults, **item}
        try:
            entry = kinds.ENTRY_ADAPTER.validate_python(data)
        except ValidationError as exc:
            fail(_problems(exc, tagged=True) + inherited)
            continue
        if inherited:
            fail(inherited)
            continue
        key = f"{kind}_{entry.name}"
        if key in dag_ids:
            fail([f"field 'name': value {entry.name!r} is already used by entry #{dag_ids[key]}"])
            continue
        dag_ids[key] = index
        entries.append(entry)
    return ClustersFile(
        path=source, defaults=defaults, entries=entries, errors=errors, defaults_errors=defaults_errors
    )
