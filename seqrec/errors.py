"""The one exception type for bad user input (files, flags, datasets)."""

from typing import Any, Iterable


class InputError(ValueError):
  """A problem with user-supplied input, reported to the user as one line.

  The message must name what is wrong and where (file and line, or flag), e.g.
  ``ratings.csv line 17: item id 'abc' is not an integer``. Binaries catch it and
  exit with that line instead of a stack trace.
  """


class TrainingError(RuntimeError):
  """Training cannot go on (e.g. the loss became NaN); the message is one line."""


def require_at_least_one(owner: object, names: tuple[str, ...], prefix: str) -> None:
  """Raises InputError naming the first of `owner`'s fields (or config keys)
  `names` below 1; a None one is unset and passes."""
  for name in names:
    value = getattr(owner, name)
    if value is not None and value < 1:
      raise InputError(f"{prefix}{name}={value}: must be at least 1")


def require_rate(value: float, name: str) -> None:
  """Raises InputError unless 0 <= value < 1 (a dropout rate)."""
  if not 0.0 <= value < 1.0:
    raise InputError(f"{name}={value}: must be in [0, 1)")


def require_choice(value: Any, allowed: Iterable[Any], name: str) -> None:
  """Raises InputError unless `value` is one of `allowed` (a tuple, or a
  dict's keys), naming the setting `name`."""
  allowed = tuple(allowed)
  if value not in allowed:
    raise InputError(f"{name}={value!r}: must be one of {allowed}")
