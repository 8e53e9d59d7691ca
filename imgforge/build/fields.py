"""Typed reads of JSON values: each returns the value or raises Malformed (light)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Malformed(ValueError):
    """A JSON value that does not have the shape imgforge writes."""


def table(value: object) -> dict[str, object]:
    """``value`` as a JSON object with string keys."""
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise Malformed("not a table")
    return value


def informed(
    read: Callable[[dict[str, object], str], T], data: dict[str, object], key: str
) -> T | None:
    """An informational field read with ``read``: None where it is missing or malformed."""
    try:
        return read(data, key)
    except Malformed:
        return None


def table_at(data: dict[str, object], key: str) -> dict[str, object]:
    return table(_get(data, key))


def _get(data: dict[str, object], key: str) -> object:
    try:
        return data[key]
    except KeyError:
        raise Malformed(f"{key} is missing") from None


def text(data: dict[str, object], key: str) -> str:
    value = _get(data, key)
    if not isinstance(value, str):
        raise Malformed(f"{key} is not a string")
    return value


def integer(data: dict[str, object], key: str) -> int:
    value = _get(data, key)
    # bool is an int to Python, never to the manifest
    if not isinstance(value, int) or isinstance(value, bool):
        raise Malformed(f"{key} is not an integer")
    return value


def real(data: dict[str, object], key: str) -> float:
    value = _get(data, key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Malformed(f"{key} is not a number")
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float
        raise Malformed(f"{key} is out of range") from None


def flag(data: dict[str, object], key: str) -> bool:
    value = _get(data, key)
    if not isinstance(value, bool):
        raise Malformed(f"{key} is not true or false")
    return value


def texts(value: object) -> tuple[str, ...]:
    """A JSON array of strings."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Malformed("not a list of strings")
    return tuple(value)


def integers(value: object) -> tuple[int, ...]:
    """A JSON array of integers (a stat signature)."""
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        raise Malformed("not a list of integers")
    return tuple(value)
