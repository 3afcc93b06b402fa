"""Readers that turn every supported dataset format into `Interactions`.

`load(spec)` dispatches on the scheme of the dataset string (config.dataset):

  synthetic        generated from a seed (`seqrec.synthetic`)
  recbole:DIR      RecBole atomic files DIR/*.inter, optional *.user, *.item
  movielens:PATH   u.data (ML-100k), ratings.dat (ML-1M/10M), ratings.csv
                   (ML-20M and later), each with its user/movie files beside it
  sasrec:FILE      one "user item" pair per line, in time order
  csv:FILE         one user per line: comma-separated items, optionally
                   "source items,,target items" (the PeterRec fine-tuning format)
  parquet:FILE     a Parquet table: user_id, item_id and optionally timestamp,
                   with optional STEM.user.parquet and STEM.item.parquet beside it
  tfds:NAME        a TFDS MovieLens ratings config, e.g. movielens/1m-ratings

Only users and items that occur in interactions are kept. Ratings are ignored
(every interaction counts as implicit feedback). Events are ordered by user,
then time, with file order breaking ties. Raw labels that are all non-negative
integers are numbered in numeric order, other labels in string order.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import gzip
import itertools
import math
import os
import stat
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from absl import logging

from seqrec import data_cache
from seqrec.errors import InputError
from seqrec.interactions import Interactions, by_user_time
from seqrec.synthetic import SyntheticConfig, generate

SCHEMES = ("synthetic", "recbole:DIR", "movielens:PATH", "sasrec:FILE",
           "csv:FILE", "parquet:FILE", "tfds:NAME")

# ML-100k's u.genre, used when a u.item comes without one.
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's",
                 "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
                 "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
                 "Sci-Fi", "Thriller", "War", "Western")
# ML-1M users.dat occupation codes 0..20, as named in the ML-1M README.
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin",
    "college/grad student", "customer service", "doctor/health care",
    "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed",
    "technician/engineer", "tradesman/craftsman", "unemployed", "writer")


# The directory of `seqrec.data_cache` that binaries pass to `load` (their
# --data_cache flag sets it; empty: off).
CACHE_ENV = "SEQREC_DATA_CACHE"


def load(spec: str, *, synthetic: SyntheticConfig | None = None,
         cache_dir: str | None = None) -> Interactions:
  """Reads the dataset named by a dataset string (config.dataset).

  Args:
    spec: "synthetic" or "SCHEME:ARG", see the module docstring.
    synthetic: the config used when spec is "synthetic" (default config if
      None); ignored otherwise.
    cache_dir: keep what a file reader returns there (`seqrec.data_cache`) and
      reuse it while the files are unchanged; None or "": read every time.

  Returns:
    Validated `Interactions`.

  Raises:
    InputError: unknown scheme, missing or malformed file (one line naming the
      file and line), or a dataset without interactions.
  """
  if spec == "synthetic":
    return generate(synthetic or SyntheticConfig())
  readers = {"recbole": _read_recbole, "movielens": _read_movielens,
             "sasrec": _read_sasrec, "csv": _read_csv, "parquet": _read_parquet,
             "tfds": _read_tfds}
  scheme, _, arg = spec.partition(":")
  if scheme not in readers:
    raise InputError(f"config.dataset={spec} is not a known dataset; expected one "
                     f"of {', '.join(SCHEMES)}")
  if not arg:
    usage = next(s for s in SCHEMES if s.startswith(scheme + ":"))
    raise InputError(f"config.dataset={spec} lacks its argument; expected {usage}")
  files = _source_files(scheme, arg)
  if cache_dir and files:
    # Validated before it was stored: checking a mapped entry again would read
    # every page of it.
    return data_cache.load(cache_dir, spec, files, lambda: readers[scheme](arg).validate())
  return readers[scheme](arg).validate()


# The side files a MovieLens reader reads beside its ratings file.
_MOVIELENS_SIDE = ("u.user", "u.item", "u.genre", "users.dat", "movies.dat", "movies.csv")


def _source_files(scheme: str, arg: str) -> list[str] | None:
  """Every file the reader of `scheme` reads for `arg`; None for sources that
  are not files (tfds keeps its own cache)."""
  if scheme == "tfds":
    return None
  if scheme == "recbole":
    inter = _find_inter(arg)
    stem = inter[:-len(".inter")]
    return [inter] + [f for f in (stem + ".user", stem + ".item") if os.path.isfile(f)]
  _require(arg)
  if scheme == "parquet":
    stem = _parquet_stem(arg)
    return [arg] + [p for p in (stem + ".user.parquet", stem + ".item.parquet")
                    if os.path.isfile(p)]
  if scheme == "movielens":
    directory = os.path.dirname(arg)
    return [arg] + [p for p in (os.path.join(directory, n) for n in _MOVIELENS_SIDE)
                    if os.path.isfile(p)]
  return [arg]


@dataclasses.dataclass(frozen=True)
class _Users:
  """Per-user side information as read from a user file.

  Attributes:
    ids: [T] raw user labels.
    features: name -> int64 [T], -1 where missing.
    vocab: name -> category names of the categorical features.
  """

  ids: np.ndarray
  features: dict[str, np.ndarray]
  vocab: dict[str, tuple[str, ...]]


@dataclasses.dataclass(frozen=True)
class _Items:
  """Per-item genres as read from an item file: ids [T], genres bool [T, G]."""

  ids: np.ndarray
  genres: np.ndarray
  names: tuple[str, ...]


# --- Formats ---------------------------------------------------------------


def _read_recbole(arg: str) -> Interactions:
  """RecBole atomic files: DIR (or DIR/NAME.inter) with NAME.user, NAME.item."""
  inter = _find_inter(arg)
  stem = inter[:-len(".inter")]
  name = f"recbole:{os.path.basename(stem)}"
  users, items = _recbole_users(stem + ".user"), _recbole_items(stem + ".item")
  header = _header_names(_first_line(inter) or "", "\t")
  stamp = "timestamp" if "timestamp" in header else None
  fast = _arrow_interactions(name, inter, "\t", None, "user_id", "item_id", stamp, users,
                             items)
  if fast is not None:
    return fast
  table = _Atomic.read(inter)
  if "timestamp" in table.names:
    time = _numbers(table.column("timestamp"), inter, table.lines, "timestamp")
  else:
    time = table.lines.astype(np.float64)  # keep file order
  return _interactions(name, inter, table.lines, table.column("user_id"),
                       table.column("item_id"), time, users, items,
                       timestamps="timestamp" in table.names)


def _find_inter(arg: str) -> str:
  """The .inter file: ARG itself, DIR/<DIR name>.inter, or the only one."""
  if os.path.isfile(arg) and arg.endswith(".inter"):
    return arg
  _require(arg, directory=True)
  inter = os.path.join(arg, os.path.basename(os.path.normpath(arg)) + ".inter")
  if os.path.isfile(inter):
    return inter
  found = sorted(glob.glob(os.path.join(arg, "*.inter")))
  if len(found) == 1:
    return found[0]
  if not found:
    raise InputError(f"{arg}: no .inter file")
  raise InputError(f"{arg}: {len(found)} .inter files; name one as "
                   "recbole:DIR/NAME.inter")


def _recbole_users(path: str) -> _Users | None:
  """NAME.user: user_id and any of age, gender, occupation."""
  if not os.path.isfile(path):
    return None
  table = _Atomic.read(path, need_rows=False)
  return _users_from_columns(
      path, table.lines, table.column("user_id"),
      **{key: table.column(key) for key in ("age", "gender", "occupation")
         if key in table.names})


def _recbole_items(path: str) -> _Items | None:
  """NAME.item: item_id and genres as a space-separated `class` or `genre`."""
  if not os.path.isfile(path):
    return None
  table = _Atomic.read(path, need_rows=False)
  column = next((c for c in ("class", "genre") if c in table.names), None)
  if column is None:
    return None
  # token_seq fields are space-separated; "|" (MovieLens' own separator) is
  # read the same, not as one compound genre.
  genres, names = _multi_hot([value.replace("|", " ").split()
                              for value in table.column(column)])
  return _Items(np.asarray(table.column("item_id")), genres, names)


@dataclasses.dataclass(frozen=True)
class _Atomic:
  """A RecBole atomic file: typed header, then tab-separated rows.

  Attributes:
    path: the file.
    names: column names without their ":type" suffix.
    header: the header line as read.
    columns: the fields of each column, one entry per data line.
    lines: int64 [n] 1-based line numbers of the data lines.
  """

  path: str
  names: tuple[str, ...]
  header: str
  columns: list[list[str]]
  lines: np.ndarray

  @classmethod
  def read(cls, path: str, need_rows: bool = True) -> "_Atomic":
    text, lines = _read_lines(path)
    if not text:
      raise InputError(f"{path}: empty file")
    names = tuple(_header_names(text[0], "\t"))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
      raise InputError(f"{path} line 1: column {repeated[0]!r} appears more than once "
                       f"in the header ({', '.join(names)})")
    if need_rows and len(text) == 1:
      raise InputError(f"{path}: no interactions after the header")
    columns = _split(path, text[1:], lines[1:], "\t", len(names))
    return cls(path, names, text[0], columns, lines[1:])

  def column(self, name: str) -> list[str]:
    _require_columns(self.path, list(self.names), (name,), "\t", self.header)
    return self.columns[self.names.index(name)]


def _read_movielens(path: str) -> Interactions:
  """MovieLens, by file name: *.csv (ML-20M+), *.dat (ML-1M/10M), else ML-100k."""
  _require(path)
  if path.endswith(".csv"):
    return _movielens_csv(path)
  if path.endswith(".dat"):
    return _movielens_dat(path)
  return _movielens_100k(path)


def _movielens_100k(path: str) -> Interactions:
  """u.data (user, item, rating, time; tabs) with u.user, u.item, u.genre."""
  directory = os.path.dirname(path)
  return _ratings(path, "\t", _ml100k_users(os.path.join(directory, "u.user")),
                  _ml100k_items(directory))


def _ratings(path: str, separator: str, users: _Users | None,
             items: _Items | None) -> Interactions:
  """A user, item, rating, timestamp file (no header) with its side tables."""
  name = _label("movielens", path)
  fast = _arrow_interactions(name, path, separator, ("user", "item", "rating", "timestamp"),
                             "user", "item", "timestamp", users, items)
  if fast is not None:
    return fast
  text, lines = _read_lines(path, required=True)
  user, item, _, stamp = _split(path, text, lines, separator, 4)
  return _interactions(name, path, lines, user, item,
                       _numbers(stamp, path, lines, "timestamp"), users, items)


def _ml100k_users(path: str) -> _Users | None:
  """u.user: id|age|gender|occupation|zip."""
  if not os.path.isfile(path):
    return None
  text, lines = _read_lines(path)
  ids, age, gender, occupation, _ = _split(path, text, lines, "|", 5)
  return _users_from_columns(path, lines, ids, age=age, gender=gender,
                             occupation=occupation)


def _ml100k_items(directory: str) -> _Items | None:
  """u.item: id|title|release|video release|IMDb URL|a 0/1 flag per genre."""
  path = os.path.join(directory, "u.item")
  if not os.path.isfile(path):
    return None
  names = ML100K_GENRES
  genre_path = os.path.join(directory, "u.genre")
  if os.path.isfile(genre_path):
    text, lines = _read_lines(genre_path)
    name, index = _split(genre_path, text, lines, "|", 2)
    order = _numbers(index, genre_path, lines, "genre index")
    names = tuple(name[i] for i in np.argsort(order))
  text, lines = _read_lines(path)
  columns = _split(path, text, lines, "|", 5 + len(names))
  flags = np.asarray(columns[5:]).T.reshape(len(text), len(names))
  bad = np.flatnonzero(~np.isin(flags, ("0", "1")).all(axis=1))
  if bad.size:
    raise InputError(f"{path} line {lines[bad[0]]}: genre flags must be 0 or 1")
  return _Items(np.asarray(columns[0]), flags == "1", names)


def _movielens_dat(path: str) -> Interactions:
  """ratings.dat (UserID::MovieID::Rating::Timestamp), users.dat, movies.dat."""
  directory = os.path.dirname(path)
  return _ratings(path, "::", _ml1m_users(os.path.join(directory, "users.dat")),
                  _ml1m_items(os.path.join(directory, "movies.dat")))


def _ml1m_users(path: str) -> _Users | None:
  """users.dat: UserID::Gender::Age::Occupation::Zip-code.

  Age is the lower bound of the user's age bucket in years and Occupation a
  code into `ML1M_OCCUPATIONS`.
  """
  if not os.path.isfile(path):
    return None
  text, lines = _read_lines(path)
  ids, gender, age, code, _ = _split(path, text, lines, "::", 5)
  code = _numbers(code, path, lines, "occupation code")
  bad = np.flatnonzero((code != np.round(code)) | (code < 0)
                       | (code >= len(ML1M_OCCUPATIONS)))
  if bad.size:
    raise InputError(f"{path} line {lines[bad[0]]}: occupation code "
                     f"{code[bad[0]]:g} is not in 0..{len(ML1M_OCCUPATIONS) - 1}")
  users = _users_from_columns(path, lines, ids, age=age, gender=gender)
  return _Users(users.ids,
                {**users.features, "occupation": code.astype(np.int64)},
                {**users.vocab, "occupation": ML1M_OCCUPATIONS})


def _ml1m_items(path: str) -> _Items | None:
  """movies.dat: MovieID::Title::Genres, genres as "A|B"."""
  if not os.path.isfile(path):
    return None
  text, lines = _read_lines(path)
  ids, _, genres = _split(path, text, lines, "::", 3)
  return _Items(np.asarray(ids), *_multi_hot(_genre_lists(genres)))


def _movielens_csv(path: str) -> Interactions:
  """ratings.csv (header userId,movieId,rating,timestamp) with movies.csv."""
  name = _label("movielens", path)
  items = _movielens_csv_items(os.path.join(os.path.dirname(path), "movies.csv"))
  fast = _arrow_interactions(name, path, ",", None, "userId", "movieId", "timestamp",
                             None, items)
  if fast is not None:
    return fast
  text, lines = _read_lines(path, required=True)
  header = [name.strip() for name in text[0].split(",")]
  _require_columns(path, header, ("userId", "movieId", "timestamp"), ",", text[0])
  if len(text) == 1:
    raise InputError(f"{path}: no interactions after the header")
  columns = _split(path, text[1:], lines[1:], ",", len(header))
  user, item, stamp = (columns[header.index(name)]
                       for name in ("userId", "movieId", "timestamp"))
  time = _numbers(stamp, path, lines[1:], "timestamp")
  return _interactions(name, path, lines[1:], user, item, time, None, items)


def _movielens_csv_items(path: str) -> _Items | None:
  """movies.csv: header movieId,title,genres; genres as "A|B"."""
  if not os.path.isfile(path):
    return None
  text, lines = _read_lines(path, required=True)
  # Titles may hold quoted commas, so this small file goes through csv.
  rows = list(csv.reader(text))
  header = [name.strip() for name in rows[0]]
  _require_columns(path, header, ("movieId", "genres"), ",", text[0])
  _check_widths(path, np.fromiter(map(len, rows[1:]), np.int64), lines[1:],
                len(header), ",", text[1:])
  ids = np.asarray([row[header.index("movieId")] for row in rows[1:]])
  genres = _genre_lists([row[header.index("genres")] for row in rows[1:]])
  return _Items(ids, *_multi_hot(genres))


def _require_columns(path: str, header: list[str], names: tuple[str, ...],
                     separator: str = "\t", line: str = ""):
  """Raises InputError unless every name is in the header (line 1, as
  `line`, split at `separator`)."""
  for name in names:
    if name not in header:
      raise InputError(f"{path} line 1: no column {name!r} in the header "
                       f"({', '.join(header)}){_separator_hint(line, separator)}")


# First-line fields that make it a header, not a user and an item.
_HEADER_WORDS = {"user", "item", "user_id", "item_id", "userid", "itemid", "uid", "iid",
                 "users", "items", "sequence", "session_id", "timestamp", "rating"}


def _header_names(line: str, delimiter: str) -> list[str]:
  """Column names of a header line: "name" or RecBole's "name:type" fields."""
  return [field.split(":")[0].strip() for field in line.split(delimiter)]


def _is_header(line: str) -> bool:
  """Whether every field of `line` is a header word (a header, not data)."""
  fields = line.replace(",", " ").lower().split()
  return bool(fields) and all(f.split(":")[0] in _HEADER_WORDS for f in fields)


def _without_header(path: str, text: list[str], lines: np.ndarray
                    ) -> tuple[list[str], np.ndarray]:
  """Skips (with a notice) a first line whose fields are all header words."""
  if text and _is_header(text[0]):
    logging.warning("%s line %d: %r is a header; skipped", path, lines[0], text[0])
    if len(text) == 1:
      raise InputError(f"{path}: no data after the header on line {lines[0]}")
    return text[1:], lines[1:]
  return text, lines


def _read_sasrec(path: str) -> Interactions:
  """One whitespace-separated "user item" pair per line, in time order; time
  is the position among the data lines."""
  fast = _arrow_interactions(_label("sasrec", path), path, " ", ("user", "item"), "user",
                             "item", None, header_words=True)
  if fast is not None:
    return fast
  text, lines = _without_header(path, *_read_lines(path, required=True))
  widths = np.fromiter(map(len, map(str.split, text)), np.int64, len(text))
  _check_widths(path, widths, lines, 2, "whitespace", text)
  fields = " ".join(text).split()
  user, item = fields[0::2], fields[1::2]
  return _interactions(_label("sasrec", path), path, lines, user, item,
                       np.arange(1, len(lines) + 1, dtype=np.float64), timestamps=False)


def _read_csv(path: str) -> Interactions:
  """One user per line: "i1,i2,..." or "s1,s2,...,,t1,t2" (source,,target).

  Target items form a second domain with their own vocabulary, numbered after
  all source items. A user's label is its line number and time is the position
  in the line, so targets come after sources.
  """
  text, lines = _without_header(path, *_read_lines(path, required=True))
  length = np.fromiter(map(str.count, text, itertools.repeat(",")), np.int64,
                       len(text)) + 1
  tokens = np.strings.strip(np.asarray(",".join(text).split(","), dtype=str))
  row = np.repeat(np.arange(len(text)), length)
  start = np.cumsum(length) - length
  position = np.arange(len(tokens)) - start[row]

  empty = tokens == ""
  empties = np.bincount(row, weights=empty, minlength=len(text))
  bad = np.flatnonzero(empties > 1)
  if bad.size:
    raise InputError(f"{path} line {lines[bad[0]]}: {int(empties[bad[0]])} empty "
                     "fields; only one ',,' may separate source from target "
                     "items")
  # Position of each line's separator (length if none): targets lie after it.
  separator = np.full(len(text), np.iinfo(np.int64).max)
  separator[row[empty]] = position[empty]
  bad = np.flatnonzero((separator == 0) | (separator == length - 1))
  if bad.size:
    raise InputError(f"{path} line {lines[bad[0]]}: empty item at the start or "
                     "end of the line")

  keep = ~empty
  time = position[keep].astype(np.float64)
  target = (position > separator[row])[keep]
  tokens = tokens[keep]
  source_ids, source_item = _index(tokens[~target])
  target_ids, target_item = _index(tokens[target])
  item = np.empty(len(tokens), np.int64)
  item[~target] = source_item
  item[target] = len(source_ids) + target_item
  domain = None
  if target.any():
    domain = np.repeat(np.array([0, 1], np.int8),
                       [len(source_ids), len(target_ids)])
  # Every kept line has an item, so users are simply the lines in order.
  return _build(_label("csv", path), row[keep], item, time, lines.astype(str),
                np.concatenate([source_ids, target_ids]), item_domain=domain,
                timestamps=False)


def _parquet_table(path: str, required: tuple[str, ...],
                   optional: tuple[str, ...] = ()) -> pa.Table:
  """The `required` and present `optional` columns of a Parquet file, with one
  line for a file that is not Parquet, a missing column, no rows or a null in
  a required column."""
  _require(path)
  try:
    schema = pq.read_schema(path)
  except (pa.ArrowException, OSError) as error:
    raise InputError(f"{path}: not a Parquet file ({str(error).splitlines()[0]})") from None
  missing = [c for c in required if c not in schema.names]
  if missing:
    raise InputError(f"{path}: no column {missing[0]!r}; it has {schema.names}")
  table = pq.read_table(path, columns=list(required) + [c for c in optional
                                                        if c in schema.names])
  if table.num_rows == 0:
    raise InputError(f"{path}: no rows")
  for name in required:
    null = table[name].is_null()
    if pc.any(null).as_py():
      raise InputError(f"{path} row {int(pc.index(null, True).as_py()) + 1}: no {name}")
  return table


def _parquet_strings(column: pa.ChunkedArray) -> np.ndarray:
  """str [n] of any Parquet column, "" for nulls."""
  return pc.fill_null(column.cast(pa.string()), "").to_numpy(zero_copy_only=False).astype(str)


def _read_parquet(path: str) -> Interactions:
  """A Parquet table with columns user_id and item_id (integers or strings) and
  optionally timestamp (numbers, or Arrow timestamps read as seconds); without
  it, row order within a user is time order. Other columns are ignored.

  Beside FILE = STEM.parquet, optional STEM.user.parquet (user_id and any of
  age, gender, occupation) and STEM.item.parquet (item_id and genres: a list of
  strings, or one string of "|"- or space-separated names) add user attributes
  and genres, as RecBole's .user and .item files do.
  """
  table = _parquet_table(path, ("user_id", "item_id"), ("timestamp",))
  has_time = "timestamp" in table.column_names
  rows = np.arange(1, table.num_rows + 1)
  time = rows.astype(np.float64)
  if has_time:
    column = table["timestamp"]
    if pa.types.is_timestamp(column.type):
      column = pc.divide(column.cast(pa.timestamp("us")).cast(pa.int64()), 1e6)
    elif not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
      raise InputError(f"{path}: column 'timestamp' is {column.type}, not numbers or "
                       "timestamps")
    time = column.to_numpy().astype(np.float64)
  ids = [table[name].to_numpy(zero_copy_only=False) for name in ("user_id", "item_id")]
  stem = _parquet_stem(path)
  return _interactions(_label("parquet", path), path, rows, *ids, time,
                       _parquet_users(stem + ".user.parquet"),
                       _parquet_items(stem + ".item.parquet"), timestamps=has_time)


def _parquet_stem(path: str) -> str:
  """STEM of STEM.parquet, beside which the side tables lie."""
  return path[:-len(".parquet")] if path.endswith(".parquet") else path


def _parquet_users(path: str) -> _Users | None:
  if not os.path.isfile(path):
    return None
  table = _parquet_table(path, ("user_id",), ("age", "gender", "occupation"))
  return _users_from_columns(
      path, np.arange(1, table.num_rows + 1), _parquet_strings(table["user_id"]),
      **{key: _parquet_strings(table[key]) for key in ("age", "gender", "occupation")
         if key in table.column_names})


def _parquet_items(path: str) -> _Items | None:
  if not os.path.isfile(path):
    return None
  table = _parquet_table(path, ("item_id", "genres"))
  column = table["genres"]
  if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
    lists = [[str(g) for g in row or ()] for row in column.to_pylist()]
  else:
    lists = [value.replace("|", " ").split() for value in _parquet_strings(column)]
  return _Items(_parquet_strings(table["item_id"]), *_multi_hot(lists))


def _read_tfds(name: str) -> Interactions:
  """A TFDS MovieLens ratings config, e.g. "movielens/100k-ratings"."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no C++ info banners
  # TensorFlow is a heavy optional dependency: only this reader imports it.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  # Keep TensorFlow off the accelerators so it takes no memory from JAX.
  tf.config.set_visible_devices([], "GPU")
  try:
    dataset, info = tfds.load(name, split="train", with_info=True)
  # TFDS reports unknown names, missing downloads and network failures with
  # many exception types; all mean the same to the user.
  except Exception as e:  # pylint: disable=broad-except
    message = str(e).strip().splitlines() or [type(e).__name__]
    raise InputError(f"config.dataset=tfds:{name}: {message[0]}") from e
  available = set(info.features.keys())
  for key in ("user_id", "movie_id", "timestamp"):
    if key not in available:
      raise InputError(f"config.dataset=tfds:{name}: no {key!r} feature (is it a "
                       "ratings config?)")
  age_key = next((k for k in ("raw_user_age", "bucketized_user_age")
                  if k in available), None)
  wanted = [k for k in ("user_id", "movie_id", "timestamp", "user_gender",
                        age_key, "user_occupation_text") if k in available]
  genre_names = ()
  if "movie_genres" in available:
    genre_names = tuple(info.features["movie_genres"].feature.names)

  def select(example):
    out = {key: example[key] for key in wanted}
    if genre_names:  # a ragged list of ids becomes a fixed multi-hot row
      out["movie_genres"] = tf.reduce_sum(
          tf.one_hot(example["movie_genres"], len(genre_names)), axis=0) > 0
    return out

  batches = list(tfds.as_numpy(dataset.map(select).batch(1 << 16)))
  if not batches:
    raise InputError(f"config.dataset=tfds:{name}: no interactions")
  column = {key: np.concatenate([b[key] for b in batches])
            for key in batches[0]}

  def text(key):
    return np.strings.decode(column[key].astype(bytes), "utf-8")

  user_ids, user = _index(text("user_id"))
  item_ids, item = _index(text("movie_id"))
  # Side information repeats on every rating: take each user's/item's first.
  first_of_user = np.unique(user, return_index=True)[1]
  first_of_item = np.unique(item, return_index=True)[1]
  features, vocab = {}, {}
  if age_key:
    features["age"] = np.rint(column[age_key][first_of_user]).astype(np.int64)
  if "user_gender" in column:  # True = male
    features["gender"] = column["user_gender"][first_of_user].astype(np.int64)
    vocab["gender"] = ("F", "M")
  if "user_occupation_text" in column:
    codes, vocab["occupation"] = _categories(
        text("user_occupation_text")[first_of_user])
    features["occupation"] = codes
  genres = column["movie_genres"][first_of_item] if genre_names else None
  return _build(f"tfds:{name}", user, item,
                column["timestamp"].astype(np.float64), user_ids, item_ids,
                features, vocab, genres, genre_names)


# --- Parsing helpers -------------------------------------------------------


def _require(path: str, directory: bool = False) -> None:
  """One line unless `path` is a file (or a directory): missing, not reachable
  (a parent directory the user may not enter) or of the other kind."""
  kind = "directory" if directory else "file"
  try:
    mode = os.stat(path).st_mode
  except FileNotFoundError:
    raise InputError(f"{path}: no such {kind}") from None
  except OSError as error:
    raise InputError(f"{path}: cannot read it ({error.strerror})") from None
  if stat.S_ISDIR(mode) != directory:
    raise InputError(f"{path}: not a {kind}")


def _read_lines(path: str, required: bool = False) -> tuple[list[str], np.ndarray]:
  """Non-blank lines of a text file and their 1-based numbers (int64 [n]).

  With `required`, a file without any line is an error. Lines are filtered
  with C-level `map`s, not a Python loop, since files can have 20M lines.
  Gzip files (by their magic bytes) are read through; a UTF-8 byte-order
  mark is dropped; "\r\n", "\r" and "\n" all end lines.
  """
  _require(path)
  try:
    with open(path, "rb") as f:
      data = f.read()
    if data[:2] == b"\x1f\x8b":
      data = gzip.decompress(data)
  except OSError as error:  # unreadable, or a corrupt gzip stream
    raise InputError(f"{path}: cannot read it ({error.strerror or error})") from None
  try:
    text = data.decode("utf-8-sig")
  except UnicodeDecodeError:  # older MovieLens releases are Latin-1
    text = data.decode("latin-1")
  lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
  size = len(lines)
  blank = ((np.fromiter(map(len, lines), np.int64, size) == 0)
           | np.fromiter(map(str.isspace, lines), bool, size))
  keep = np.flatnonzero(~blank)
  if required and not keep.size:
    raise InputError(f"{path}: empty file")
  if keep.size < size:
    lines = list(map(lines.__getitem__, keep.tolist()))
  return lines, keep + 1


def _first_line(path: str) -> str | None:
  """The first line of a (possibly gzip) UTF-8 text file, without a byte-order
  mark; None if it cannot be read or decoded."""
  try:
    with open(path, "rb") as f:
      head = f.read(2)
      f.seek(0)
      stream = gzip.GzipFile(fileobj=f) if head == b"\x1f\x8b" else f
      start = stream.read(1 << 16)
    return start.replace(b"\r", b"\n").split(b"\n")[0].decode("utf-8-sig")
  except (OSError, UnicodeDecodeError):
    return None


# Bytes of text per block: large enough that per-block work is negligible,
# small enough that one block's strings are a small part of the memory.
_BLOCK = 16 << 20


def _arrow_table(path: str, delimiter: str, names: Sequence[str] | None,
                 want: Sequence[str], header_words: bool = False,
                 ints: Sequence[str] = ()) -> pa.Table | None:
  """The `want` columns, as strings, of a strictly formed delimited text file,
  read block by block by pyarrow's CSV reader (no Python object per field).

  Args:
    path: the file (gzip by its magic bytes).
    delimiter: the field separator: one character, or "::".
    names: the file's columns when it has no header; None reads them from the
      header line ("name" or RecBole's "name:type").
    want: the columns to return.
    header_words: with `names`, skip a first line of header words
      (`_is_header`) with a notice, as `_without_header` does.
    ints: columns of `want` returned as int64 instead, converted block by
      block so that their strings never all exist at once; None if a value is
      not a canonical non-negative integer (`_canonical_ints`).
  Returns:
    The table, or None whenever the file is not strictly formed: a blank or
    missing first line, a header without the wanted columns or with one twice,
    a line with another field count, bytes that are not UTF-8, no data lines.
    The line reader then reads it and gives its exact one-line diagnosis, or
    reads what it tolerates (runs of whitespace, blank lines at the start).
  """
  first = _first_line(path)
  if first is None or not first.strip():
    return None
  skip = 0
  if names is None:
    names = _header_names(first, delimiter)
    if len(set(names)) < len(names) or not set(want) <= set(names):
      return None
    skip = 1
  elif header_words and _is_header(first):
    logging.warning("%s line 1: %r is a header; skipped", path, first)
    skip = 1
  columns = list(want)
  if delimiter == "::":  # pyarrow splits at one character: "a::b" is "a", "", "b"
    names = [n for name in names for n in (name, f"::{name}")][:-1]
    delimiter, columns = ":", columns + names[1::2]
  with open(path, "rb") as f:
    gzipped = f.read(2) == b"\x1f\x8b"
  gaps, batches = columns[len(want):], []
  try:
    reader = pcsv.open_csv(
        pa.input_stream(path, compression="gzip" if gzipped else None),
        read_options=pcsv.ReadOptions(column_names=list(names), skip_rows=skip,
                                      block_size=_BLOCK),
        parse_options=pcsv.ParseOptions(delimiter=delimiter, quote_char=False),
        convert_options=pcsv.ConvertOptions(include_columns=columns,
                                            column_types={n: pa.string() for n in columns}))
    for batch in reader:
      if any(pc.max(pc.binary_length(batch[g])).as_py() for g in gaps):
        return None
      arrays = [batch[name] for name in want]
      for name in ints:
        values = _canonical_ints(batch[name])
        if values is None:
          return None
        arrays[list(want).index(name)] = pa.array(values)
      batches.append(pa.RecordBatch.from_arrays(arrays, names=list(want)))
  except (pa.ArrowException, OSError):
    return None
  if not batches or not sum(b.num_rows for b in batches):
    return None
  return pa.Table.from_batches(batches)


def _arrow_interactions(name: str, path: str, delimiter: str, names: Sequence[str] | None,
                        user: str, item: str, stamp: str | None,
                        users: _Users | None = None, items: _Items | None = None,
                        header_words: bool = False) -> Interactions | None:
  """`_interactions` of a strictly formed file read by pyarrow (`_arrow_table`
  has the arguments): columns `user`, `item` and `stamp` (None: time is the
  position). None where the line reader must read the file instead.

  Equal to what the line reader gives, except that without timestamps time is
  the position among data lines, not the line number (the same order).
  """
  want = [user, item] + [stamp] * bool(stamp)
  # Integer labels (the common case) never hold all their strings at once.
  table = (_arrow_table(path, delimiter, names, want, header_words, ints=(user, item))
           or _arrow_table(path, delimiter, names, want, header_words))
  if table is None:
    return None
  labels = [_arrow_labels(table[column]) for column in (user, item)]
  time = (np.arange(1, table.num_rows + 1, dtype=np.float64) if stamp is None
          else _arrow_numbers(table[stamp]))
  del table
  # Hand the strings' memory back to the system now: pyarrow's pool keeps it.
  pa.default_memory_pool().release_unused()
  if None in labels or time is None:
    return None
  return _indexed(name, *labels, time, users, items, timestamps=stamp is not None)


def _arrow_labels(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray] | None:
  """`_index` of a string column: (ids [L] str, int64 [n]); None if a label is
  empty or has whitespace at an edge (the line reader strips or refuses those).

  Labels that are canonical non-negative integers (no sign, no leading zero)
  are numbered by value without forming a string per row, which is the
  numeric order `_index` gives them.
  """
  values = (column.to_numpy() if pa.types.is_integer(column.type)
            else _canonical_ints(column))
  if values is not None:
    top = int(values.max())
    if top < 4 * len(values) + (1 << 20):  # a dense range: count, do not sort
      present = np.zeros(top + 1, bool)
      present[values] = True
      ids, index = np.flatnonzero(present), (np.cumsum(present) - 1)[values]
    else:
      ids, index = np.unique(values, return_inverse=True)
    return ids.astype(str), index.astype(np.int64)
  lengths = pc.binary_length(column)
  trimmed = pc.binary_length(pc.utf8_trim_whitespace(column))
  if pc.any(pc.equal(lengths, 0)).as_py() or not pc.all(pc.equal(lengths, trimmed)).as_py():
    return None
  encoded = pc.dictionary_encode(column.combine_chunks())
  ids, rank = _index(encoded.dictionary.to_numpy(zero_copy_only=False))
  return ids, rank[encoded.indices.to_numpy()]


def _canonical_ints(column: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
  """int64 [n] of string labels that are all canonical non-negative integers
  (digits only, no leading zero), else None."""
  try:
    values = pc.cast(column, pa.int64()).to_numpy()
  except pa.ArrowInvalid:  # a sign, a blank, a letter, an overflow
    return None
  if not len(values) or values.min() < 0:
    return None
  digits = np.maximum(1, np.searchsorted(10 ** np.arange(19, dtype=np.int64), values,
                                         side="right"))
  return values if np.array_equal(digits, pc.binary_length(column).to_numpy()) else None


def _arrow_numbers(column: pa.ChunkedArray) -> np.ndarray | None:
  """float64 [n] of a string column; None unless every value is a finite number."""
  try:
    values = pc.cast(column, pa.float64()).to_numpy()
  except pa.ArrowInvalid:
    return None
  return values if np.isfinite(values).all() else None


def _split(path: str, text: list[str], lines: np.ndarray, separator: str,
           width: int) -> list[list[str]]:
  """Columns of lines that must each have `width` `separator`-split fields.

  Returns:
    `width` lists of n strings.
  """
  counts = np.fromiter(map(str.count, text, itertools.repeat(separator)),
                       np.int64, len(text)) + 1
  _check_widths(path, counts, lines, width, separator, text)
  if not text:
    return [[] for _ in range(width)]
  # One split of the joined text is far faster than a split per line.
  fields = separator.join(text).split(separator)
  return [fields[j::width] for j in range(width)]


_SEPARATORS = {"\t": "tabs", ",": "commas", ";": "semicolons", "|": "'|'", "::": "'::'",
               " ": "spaces"}


def _separator_hint(line: str, expected: str) -> str:
  """" (the line has commas: ...)" when `line` holds another common separator
  than `expected` (a `_SEPARATORS` key, or "whitespace"), else ""."""
  others = [s for s in _SEPARATORS
            if s != expected and not (expected == "whitespace" and s.isspace())]
  found = max(others, key=line.count)
  if not line.count(found):
    return ""
  return f" (the line has {_SEPARATORS[found]}: is the file {found!r}-separated?)"


def _check_widths(path: str, widths: np.ndarray, lines: np.ndarray,
                  width: int, separator: str, text: list[str]) -> None:
  """Raises InputError at the first line whose field count is not `width`;
  `text` (the lines) diagnoses a file that uses another separator."""
  bad = np.flatnonzero(widths != width)
  if bad.size:
    shown = repr(separator) if separator != "whitespace" else separator
    raise InputError(f"{path} line {lines[bad[0]]}: expected {width} fields "
                     f"separated by {shown}, found {widths[bad[0]]}"
                     f"{_separator_hint(text[bad[0]], separator)}")


def _numbers(values: list[str], path: str, lines: np.ndarray,
             what: str) -> np.ndarray:
  """float64 [n] from strings; the first non-number or non-finite is an error."""
  try:
    out = np.asarray(values, dtype=np.float64)
  except ValueError:
    out = None
  if out is None or not np.isfinite(out).all():
    for value, line in zip(values, lines):
      try:
        finite = math.isfinite(float(value))
      except ValueError:
        finite = False
      if not finite:
        raise InputError(f"{path} line {line}: {what} {value!r} is not a "
                         "finite number")
  return out


def _genre_lists(values: list[str]) -> list[list[str]]:
  """MovieLens "A|B" genre fields as lists; "(no genres listed)" is none."""
  return [[g for g in value.strip().split("|")
           if g and g != "(no genres listed)"] for value in values]


# --- Assembly --------------------------------------------------------------


def _index(labels) -> tuple[np.ndarray, np.ndarray]:
  """Distinct labels ([L] str) in natural order, and int64 [n] indices."""
  ids, inverse = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
  if ids.size and np.strings.isdigit(ids).all():
    # Numeric labels: shorter first, then by digits, i.e. numeric order.
    order = np.lexsort((ids, np.strings.str_len(ids)))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    ids, inverse = ids[order], rank[inverse]
  return ids, inverse.reshape(-1).astype(np.int64)


def _categories(values) -> tuple[np.ndarray, tuple[str, ...]]:
  """int64 [n] codes into the sorted distinct non-empty values (-1 = empty)."""
  values = np.strings.strip(np.asarray(values, dtype=str))
  vocab, codes = np.unique(values, return_inverse=True)
  codes = codes.reshape(-1).astype(np.int64)
  if vocab.size and vocab[0] == "":
    codes -= 1
    vocab = vocab[1:]
  return codes, tuple(str(v) for v in vocab)


def _multi_hot(lists: list[list[str]]) -> tuple[np.ndarray, tuple[str, ...]]:
  """bool [n, G] rows over the sorted distinct names in `lists`."""
  sizes = np.fromiter(map(len, lists), np.int64, len(lists))
  flat = np.asarray([name for names in lists for name in names], dtype=str)
  names, column = np.unique(flat, return_inverse=True)
  genres = np.zeros((len(lists), len(names)), bool)
  genres[np.repeat(np.arange(len(lists)), sizes), column.reshape(-1)] = True
  return genres, tuple(str(n) for n in names)


def _users_from_columns(path: str, lines: np.ndarray, ids, age=None,
                        gender=None, occupation=None) -> _Users:
  """A user table from raw string columns (any may be None)."""
  features, vocab = {}, {}
  if age is not None:
    # Empty ages are missing; anything else must be a number of years.
    present = np.strings.strip(np.asarray(age, dtype=str)) != ""
    years = np.full(len(present), -1, np.int64)
    values = _numbers(np.asarray(age)[present].tolist(), path, lines[present],
                      "age")
    years[present] = np.rint(values).astype(np.int64)
    features["age"] = years
  for key, column in (("gender", gender), ("occupation", occupation)):
    if column is not None:
      features[key], vocab[key] = _categories(column)
  return _Users(np.asarray(ids, dtype=str), features, vocab)


def _align(table_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
  """int64 [len(ids)]: the row of each id in `table_ids`, -1 if absent."""
  if not len(table_ids):
    return np.full(len(ids), -1, np.int64)
  sorter = np.argsort(table_ids, kind="stable")
  at = np.searchsorted(table_ids, ids, sorter=sorter)
  row = sorter[np.minimum(at, len(table_ids) - 1)]
  return np.where(table_ids[row] == ids, row, -1)


def _interactions(name: str, path: str, lines: np.ndarray, user_tokens,
                  item_tokens, time: np.ndarray, users: _Users | None = None,
                  items: _Items | None = None, timestamps: bool = True) -> Interactions:
  """Indexes raw labels and attaches side tables (users/items as read).

  Args:
    name: the dataset label.
    path: the interaction file, for error messages.
    lines: int64 [n] line number of each interaction.
    user_tokens: n raw user labels.
    item_tokens: n raw item labels.
    time: float64 [n] timestamps.
    users: the user table, if any.
    items: the item table, if any.
    timestamps: `time` is real (False: file positions).
  """
  user_tokens = np.strings.strip(np.asarray(user_tokens, dtype=str))
  item_tokens = np.strings.strip(np.asarray(item_tokens, dtype=str))
  bad = np.flatnonzero((user_tokens == "") | (item_tokens == ""))
  if bad.size:
    raise InputError(f"{path} line {lines[bad[0]]}: empty user or item id")
  return _indexed(name, _index(user_tokens), _index(item_tokens), time, users, items,
                  timestamps)


def _indexed(name: str, users_index: tuple[np.ndarray, np.ndarray],
             items_index: tuple[np.ndarray, np.ndarray], time: np.ndarray,
             users: _Users | None = None, items: _Items | None = None,
             timestamps: bool = True) -> Interactions:
  """`_interactions` from labels already indexed: (ids [U] str, int64 [n]) of
  the users and of the items (`_index`)."""
  (user_ids, user), (item_ids, item) = users_index, items_index
  features, vocab = {}, {}
  if users is not None:
    row = _align(np.strings.strip(users.ids), user_ids)
    features = {key: np.where(row >= 0, values[row], -1)
                for key, values in users.features.items()}
    vocab = users.vocab
  genres, genre_names = None, ()
  if items is not None:
    row = _align(np.strings.strip(items.ids.astype(str)), item_ids)
    genres = items.genres[row] & (row >= 0)[:, None]
    genre_names = items.names
  return _build(name, user, item, time, user_ids, item_ids, features, vocab,
                genres, genre_names, timestamps=timestamps)


def _build(name: str, user: np.ndarray, item: np.ndarray, time: np.ndarray,
           user_ids: np.ndarray, item_ids: np.ndarray,
           user_features: dict[str, np.ndarray] | None = None,
           feature_vocab: dict[str, tuple[str, ...]] | None = None,
           item_genres: np.ndarray | None = None,
           genre_names: tuple[str, ...] = (),
           item_domain: np.ndarray | None = None,
           timestamps: bool = True) -> Interactions:
  """Orders events by user then time (stable) and wraps them up."""
  time = np.asarray(time, np.float64)
  order = by_user_time(user, time)
  if order is not None:
    user, item, time = user[order], item[order], time[order]
  return Interactions(
      name=name, user=user, item=item, time=time, user_ids=user_ids,
      item_ids=item_ids, user_features=user_features or {},
      feature_vocab=feature_vocab or {}, item_genres=item_genres,
      genre_names=genre_names, item_domain=item_domain, timestamps=timestamps)


def _label(scheme: str, path: str) -> str:
  """A short dataset name: the scheme and the file's folder/name."""
  path = os.path.normpath(path)
  parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
  return f"{scheme}:{os.path.join(parent, os.path.basename(path))}"
