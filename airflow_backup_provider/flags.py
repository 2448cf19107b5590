"""Flags that arrive through templates (`"{{ params.dry_run }}"`) as text, not as booleans."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException


def as_bool(value: Any, field: str = "dry_run") -> bool:
    """`True`/`"True"`/`"false"`/`"1"`/`None` -> bool; anything else is refused, naming the field.

    A rendered `"False"` is truthy as a string: reading it with `if value:` would turn every
    real run into a dry run (or the reverse for other flags).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if value is None:
        return False
    raise AirflowFailException(f"field {field!r}: value {value!r} is not a boolean")
