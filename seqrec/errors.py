"""The one exception type for bad user input (files, flags, datasets)."""


class InputError(ValueError):
  """A problem with user-supplied input, reported to the user as one line.

  The message must name what is wrong and where (file and line, or flag), e.g.
  ``ratings.csv line 17: item id 'abc' is not an integer``. Binaries catch it and
  exit with that line instead of a stack trace.
  """


class TrainingError(RuntimeError):
  """Training cannot go on (e.g. the loss became NaN); the message is one line."""
