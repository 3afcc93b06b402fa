"""Tests for the dataset readers: every format, real ML-100k, and bad input."""

import gzip
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seqrec import sources
from seqrec.errors import InputError
from seqrec.synthetic import SyntheticConfig
from tests.paths import BEAUTY, ML100K, needs_beauty, needs_ml100k


def _write(directory, files: dict[str, str | bytes]) -> None:
  for name, content in files.items():
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(os.path.join(directory, name), mode) as f:
      f.write(content)


def _sequences(data) -> dict[str, list[str]]:
  """Raw user label -> raw item labels in time order."""
  out = {}
  for u, i in zip(data.user, data.item):
    out.setdefault(str(data.user_ids[u]), []).append(str(data.item_ids[i]))
  return out


def _feature(data, key: str, user: str):
  """A user's feature by raw label: the vocabulary name, or the number."""
  value = data.user_features[key][list(data.user_ids).index(user)]
  if value < 0:
    return None
  return data.feature_vocab[key][value] if key in data.feature_vocab else value


def _genres(data, item: str) -> set[str]:
  row = data.item_genres[list(data.item_ids).index(item)]
  return {data.genre_names[g] for g in np.flatnonzero(row)}


def test_synthetic():
  data = sources.load("synthetic", synthetic=SyntheticConfig(num_users=7))
  assert data.num_users == 7 and data.name == "synthetic"


def test_recbole(tmp_path):
  _write(tmp_path, {
      # Columns in a different order than usual, with a header type suffix.
      "toy.inter": "item_id:token\trating:float\ttimestamp:float\tuser_id:token\n"
                   "10\t5\t300\tb\n20\t4\t100\ta\n10\t3\t200\ta\n\n30\t1\t50\tb\n",
      "toy.user": "user_id:token\tage:token\tgender:token\toccupation:token\n"
                  "a\t31\tF\tnurse\nz\t40\tM\tpilot\n",
      "toy.item": "item_id:token\ttitle:token_seq\tgenre:token_seq\n"
                  "10\tA film\tDrama Comedy\n20\tB film\t\n",
  })
  data = sources.load(f"recbole:{tmp_path}/toy.inter")
  assert data.name == "recbole:toy"
  assert _sequences(data) == {"a": ["20", "10"], "b": ["30", "10"]}
  np.testing.assert_array_equal(data.time, [100, 200, 50, 300])
  assert _feature(data, "age", "a") == 31 and _feature(data, "age", "b") is None
  assert _feature(data, "gender", "a") == "F"
  assert data.feature_vocab["occupation"] == ("nurse", "pilot")
  assert data.genre_names == ("Comedy", "Drama")
  assert _genres(data, "10") == {"Comedy", "Drama"}
  assert _genres(data, "20") == _genres(data, "30") == set()


def test_recbole_finds_the_inter_file_and_keeps_file_order(tmp_path):
  _write(tmp_path, {"other.inter": "user_id:token\titem_id:token\n"
                                   "1\t9\n1\t8\n2\t9\n"})
  data = sources.load(f"recbole:{tmp_path}")
  assert _sequences(data) == {"1": ["9", "8"], "2": ["9"]}
  assert list(data.item_ids) == ["8", "9"]


@needs_ml100k
def test_recbole_ml100k():
  data = sources.load(f"recbole:{ML100K}")
  assert (data.num_users, data.num_items, len(data)) == (943, 1682, 100_000)
  assert data.name == "recbole:ml-100k"
  assert data.feature_vocab["gender"] == ("F", "M")
  assert len(data.feature_vocab["occupation"]) == 21
  for values in data.user_features.values():
    assert values.min() >= 0
  assert 7 <= data.user_features["age"].min() < data.user_features["age"].max() <= 73
  assert len(data.genre_names) == 19 and data.item_genres.any(axis=1).all()
  assert _genres(data, "1") == {"Animation", "Children's", "Comedy"}
  same_user = np.diff(data.user) == 0
  assert (np.diff(data.time)[same_user] >= 0).all()


@needs_ml100k
def test_movielens_100k_matches_recbole(tmp_path):
  """The same data as u.data/u.user/u.item reads back identically."""
  def rows(name):
    with open(os.path.join(ML100K, name), encoding="utf-8") as f:
      return [line.rstrip("\n").split("\t") for line in f][1:]

  flags = {g: i for i, g in enumerate(sources.ML100K_GENRES)}
  items = []
  for item, title, year, genres in rows("ml-100k.item"):
    on = np.zeros(len(flags), int)
    on[[flags[g] for g in genres.split()]] = 1
    items.append("|".join([item, title, year, "", "url", *map(str, on)]))
  _write(tmp_path, {
      "u.data": "\n".join("\t".join(r) for r in rows("ml-100k.inter")) + "\n",
      "u.user": "\n".join("|".join(r) for r in rows("ml-100k.user")) + "\n",
      "u.item": "\n".join(items) + "\n",
  })
  ours = sources.load(f"movielens:{tmp_path}/u.data")
  theirs = sources.load(f"recbole:{ML100K}")
  for field in ("user", "item", "time", "user_ids", "item_ids"):
    np.testing.assert_array_equal(getattr(ours, field), getattr(theirs, field))
  for key, values in theirs.user_features.items():
    np.testing.assert_array_equal(ours.user_features[key], values)
  assert ours.feature_vocab == theirs.feature_vocab
  assert ours.genre_names == sources.ML100K_GENRES
  columns = [ours.genre_names.index(g) for g in theirs.genre_names]
  np.testing.assert_array_equal(ours.item_genres[:, columns], theirs.item_genres)


def test_movielens_100k_with_genre_file(tmp_path):
  _write(tmp_path, {
      "u.data": "1\t7\t5\t20\n1\t8\t3\t10\n2\t7\t4\t30\n",
      "u.user": "1|24|M|technician|85711\n",
      "u.genre": "Drama|1\nComedy|0\n\n",
      "u.item": "7|Seven|01-Jan-1995||http://x|0|1\n8|Eight|||http://y|1|1\n",
  })
  data = sources.load(f"movielens:{tmp_path}/u.data")
  assert _sequences(data) == {"1": ["8", "7"], "2": ["7"]}
  assert data.genre_names == ("Comedy", "Drama")
  assert _genres(data, "7") == {"Drama"}
  assert _feature(data, "occupation", "1") == "technician"
  assert _feature(data, "gender", "2") is None


def test_movielens_1m(tmp_path):
  _write(tmp_path, {
      "ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n"
                     "2::1193::4::978298413\n",
      "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
      "movies.dat": "661::James and the Giant Peach (1996)::Animation|Musical\n"
                    "1193::Mis\xe9rables (1995)::Drama\n".encode("latin-1"),
  })
  data = sources.load(f"movielens:{tmp_path}/ratings.dat")
  assert data.name == f"movielens:{tmp_path.name}/ratings.dat"
  assert _sequences(data) == {"1": ["1193", "661"], "2": ["1193"]}
  assert _feature(data, "age", "2") == 56
  assert _feature(data, "occupation", "1") == "K-12 student"
  assert _feature(data, "occupation", "2") == "self-employed"
  assert _genres(data, "661") == {"Animation", "Musical"}


def test_movielens_csv(tmp_path):
  _write(tmp_path, {
      "ratings.csv": "userId,movieId,rating,timestamp\n"
                     "1,31,2.5,1260759144\n1,1029,3.0,1260759179\n"
                     "7,31,4.0,851866703\n",
      "movies.csv": "movieId,title,genres\n"
                    '31,"Dangerous Minds, The (1995)",Drama\n'
                    "1029,Dumbo (1941),(no genres listed)\n",
  })
  data = sources.load(f"movielens:{tmp_path}/ratings.csv")
  assert _sequences(data) == {"1": ["31", "1029"], "7": ["31"]}
  assert data.genre_names == ("Drama",)
  assert _genres(data, "31") == {"Drama"} and _genres(data, "1029") == set()
  assert data.user_features == {}


def test_sasrec(tmp_path):
  _write(tmp_path, {"seq.txt": "1 5\n1 3\n2 5\n1 5\n"})
  data = sources.load(f"sasrec:{tmp_path}/seq.txt")
  assert _sequences(data) == {"1": ["5", "3", "5"], "2": ["5"]}
  np.testing.assert_array_equal(data.time, [1, 2, 4, 3])
  assert data.item_domain is None


def test_csv_single_domain(tmp_path):
  _write(tmp_path, {"seq.csv": "4,5,6\n5,4\n"})
  data = sources.load(f"csv:{tmp_path}/seq.csv")
  assert _sequences(data) == {"1": ["4", "5", "6"], "2": ["5", "4"]}
  assert data.item_domain is None


def test_csv_source_and_target(tmp_path):
  _write(tmp_path, {"seq.csv": "4,5,,5\n 5 ,6,,9,7\n6,4\n"})
  data = sources.load(f"csv:{tmp_path}/seq.csv")
  # Source items first, then target items, each in its own vocabulary.
  assert list(data.item_ids) == ["4", "5", "6", "5", "7", "9"]
  np.testing.assert_array_equal(data.item_domain, [0, 0, 0, 1, 1, 1])
  assert [list(data.item[data.user == u]) for u in range(3)] == [
      [0, 1, 3], [1, 2, 5, 4], [2, 0]]
  np.testing.assert_array_equal(data.time[data.user == 1], [0, 1, 3, 4])


def test_tfds_mock():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=20):
    data = sources.load("tfds:movielens/100k-ratings")
  assert len(data) == 20 and data.name == "tfds:movielens/100k-ratings"
  assert set(data.user_features) == {"age", "gender", "occupation"}
  assert data.feature_vocab["gender"] == ("F", "M")
  assert len(data.genre_names) == 21
  assert data.item_genres.shape == (data.num_items, 21)
  with pytest.raises(InputError, match="tfds:no_such_dataset") as error:
    sources.load("tfds:no_such_dataset")
  assert "\n" not in str(error.value)


@needs_ml100k
def test_parquet_ml100k_matches_recbole(tmp_path):
  """RecBole's ml-100k.inter as a Parquet table (integer ids, timestamps)."""
  inter = np.loadtxt(os.path.join(ML100K, "ml-100k.inter"), dtype=np.int64, skiprows=1)
  # Shuffled rows: the reader orders events by user, then timestamp, then row.
  inter = inter[np.random.default_rng(0).permutation(len(inter))]
  pq.write_table(pa.table({"item_id": inter[:, 1], "user_id": inter[:, 0],
                           "rating": inter[:, 2], "timestamp": inter[:, 3]}),
                 tmp_path / "ml.parquet")
  ours = sources.load(f"parquet:{tmp_path}/ml.parquet")
  theirs = sources.load(f"recbole:{ML100K}")
  np.testing.assert_array_equal(ours.user_ids, theirs.user_ids)
  np.testing.assert_array_equal(ours.item_ids, theirs.item_ids)
  np.testing.assert_array_equal(ours.time, theirs.time)
  # Same events per user and time; ties in time may come in another row order.
  assert sorted(zip(ours.user, ours.time, ours.item)) == sorted(
      zip(theirs.user, theirs.time, theirs.item))
  assert ours.timestamps and ours.name == f"parquet:{tmp_path.name}/ml.parquet"


@needs_ml100k
def test_parquet_side_tables_match_recbole(tmp_path):
  """ML-100k's .user and .item files as Parquet tables beside the interactions."""
  def rows(name):
    with open(os.path.join(ML100K, name), encoding="utf-8") as f:
      return [line.rstrip("\n").split("\t") for line in f][1:]

  inter = np.asarray(rows("ml-100k.inter"), dtype=np.int64)
  pq.write_table(pa.table({"user_id": inter[:, 0], "item_id": inter[:, 1],
                           "timestamp": inter[:, 3]}), tmp_path / "ml.parquet")
  users = rows("ml-100k.user")
  pq.write_table(pa.table({"user_id": [int(u[0]) for u in users],
                           "age": [int(u[1]) for u in users], "gender": [u[2] for u in users],
                           "occupation": [u[3] for u in users]}), tmp_path / "ml.user.parquet")
  items = rows("ml-100k.item")
  pq.write_table(pa.table({"item_id": [i[0] for i in items],
                           "genres": [i[3].split() for i in items]}),
                 tmp_path / "ml.item.parquet")
  ours = sources.load(f"parquet:{tmp_path}/ml.parquet")
  theirs = sources.load(f"recbole:{ML100K}")
  for key, values in theirs.user_features.items():
    np.testing.assert_array_equal(ours.user_features[key], values, key)
  assert ours.feature_vocab == theirs.feature_vocab
  assert ours.genre_names == theirs.genre_names
  np.testing.assert_array_equal(ours.item_genres, theirs.item_genres)
  pq.write_table(pa.table({"item_id": ["1"], "genre": ["Drama"]}), tmp_path / "ml.item.parquet")
  with pytest.raises(InputError, match=r"ml.item.parquet: no column 'genres'"):
    sources.load(f"parquet:{tmp_path}/ml.parquet")


def test_parquet_string_ids_row_order_and_arrow_timestamps(tmp_path):
  pq.write_table(pa.table({"user_id": ["b", "a", "b", "a"], "item_id": ["x", "y", "y", "x"]}),
                 tmp_path / "plain.parquet")
  data = sources.load(f"parquet:{tmp_path}/plain.parquet")
  assert _sequences(data) == {"a": ["y", "x"], "b": ["x", "y"]} and not data.timestamps
  stamps = pa.array([3, 1, 2, 0], pa.timestamp("s"))
  pq.write_table(pa.table({"user_id": [7, 7, 7, 8], "item_id": [1, 2, 3, 1],
                           "timestamp": stamps}), tmp_path / "timed.parquet")
  data = sources.load(f"parquet:{tmp_path}/timed.parquet")
  assert _sequences(data) == {"7": ["2", "3", "1"], "8": ["1"]} and data.timestamps
  np.testing.assert_array_equal(data.time, [1, 2, 3, 0])


@pytest.mark.parametrize("table, expected", [
    (None, "not a Parquet file"),
    ({"user": [1], "item_id": [2]}, "no column 'user_id'; it has ['user', 'item_id']"),
    ({"user_id": [1, None], "item_id": [2, 3]}, "row 2: no user_id"),
    ({"user_id": [1], "item_id": [2], "timestamp": ["noon"]},
     "column 'timestamp' is string, not numbers or timestamps"),
    ({"user_id": pa.array([], pa.int64()), "item_id": pa.array([], pa.int64())}, "no rows"),
])
def test_bad_parquet_is_one_line(tmp_path, table, expected):
  path = tmp_path / "bad.parquet"
  if table is None:
    path.write_text("user_id,item_id\n1,2\n")
  else:
    pq.write_table(pa.table(table), path)
  with pytest.raises(InputError) as error:
    sources.load(f"parquet:{path}")
  assert str(error.value).startswith(f"{path}") and expected in str(error.value)
  assert "\n" not in str(error.value)


def test_readers_do_not_import_tensorflow():
  code = ("import sys; from seqrec import sources; "
          "sources.load('synthetic'); assert 'tensorflow' not in sys.modules")
  root = os.path.join(os.path.dirname(__file__), "..", "..")
  subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


INTER = "user_id:token\titem_id:token\ttimestamp:float\n"

BAD_INPUTS = [
    # (files, spec, expected message part); {d} is the temporary directory.
    ({}, "nonsense", "config.dataset=nonsense is not a known dataset; expected one "
     "of synthetic, recbole:DIR"),
    ({}, "csv:", "config.dataset=csv: lacks its argument; expected csv:FILE"),
    ({}, "recbole:{d}/none", "{d}/none: no such directory"),
    ({"a.x": ""}, "recbole:{d}", "{d}: no .inter file"),
    ({"a.inter": INTER, "b.inter": INTER}, "recbole:{d}", "2 .inter files"),
    ({}, "movielens:{d}/u.data", "{d}/u.data: no such file"),
    ({"a.inter": ""}, "recbole:{d}", "{d}/a.inter: empty file"),
    ({"a.inter": INTER}, "recbole:{d}", "{d}/a.inter: no interactions"),
    ({"a.inter": "user_id:token\titem:token\n1\t2\n"}, "recbole:{d}",
     "{d}/a.inter line 1: no column 'item_id'"),
    ({"a.inter": INTER + "1\t2\t3\n1\t2\n"}, "recbole:{d}",
     "{d}/a.inter line 3: expected 3 fields separated by '\\t', found 2"),
    ({"a.inter": INTER + "1\t2\t3\n\n1\t2\tnoon\n"}, "recbole:{d}",
     "{d}/a.inter line 4: timestamp 'noon' is not a finite number"),
    ({"a.inter": INTER + "1\t2\t3\n",
      "a.user": "user_id:token\tage:token\n1\told\n"}, "recbole:{d}",
     "{d}/a.user line 2: age 'old'"),
    ({"u.data": "1\t2\t3\t4\n1\t2\t3\n"}, "movielens:{d}/u.data",
     "{d}/u.data line 2: expected 4 fields"),
    ({"u.data": "1\t2\t3\tnan\n"}, "movielens:{d}/u.data",
     "{d}/u.data line 1: timestamp 'nan'"),
    ({"u.data": "\t2\t3\t4\n"}, "movielens:{d}/u.data",
     "{d}/u.data line 1: empty user or item id"),
    ({"u.data": "1\t2\t3\t4\n", "u.item": "2|t|d||u" + "|0" * 18 + "|2\n"},
     "movielens:{d}/u.data", "{d}/u.item line 1: genre flags must be 0 or 1"),
    ({"ratings.dat": "1::2::3::4\n1:2:3:4\n"}, "movielens:{d}/ratings.dat",
     "{d}/ratings.dat line 2: expected 4 fields separated by '::', found 1"),
    ({"ratings.dat": "1::2::3::4\n", "users.dat": "1::F::1::25::1\n"},
     "movielens:{d}/ratings.dat",
     "{d}/users.dat line 1: occupation code 25 is not in 0..20"),
    ({"ratings.csv": "userId,movieId,rating\n1,2,3\n"},
     "movielens:{d}/ratings.csv",
     "{d}/ratings.csv line 1: no column 'timestamp'"),
    ({"ratings.csv": "userId,movieId,rating,timestamp\n"},
     "movielens:{d}/ratings.csv", "{d}/ratings.csv: no interactions"),
    ({"s.txt": "1 2\n\n1 2 3\n"}, "sasrec:{d}/s.txt",
     "{d}/s.txt line 3: expected 2 fields separated by whitespace, found 3"),
    ({"s.txt": "\n \n"}, "sasrec:{d}/s.txt", "{d}/s.txt: empty file"),
    ({"s.csv": "1,2\n1,,2,,3\n"}, "csv:{d}/s.csv",
     "{d}/s.csv line 2: 2 empty fields; only one ',,'"),
    ({"s.csv": "1,2\n,2\n"}, "csv:{d}/s.csv", "{d}/s.csv line 2: empty item"),
    ({"s.csv": "1,2,\n"}, "csv:{d}/s.csv", "{d}/s.csv line 1: empty item"),
    # Another separator than the format's is named.
    ({"s.txt": "1,2\n"}, "sasrec:{d}/s.txt",
     "found 1 (the line has commas: is the file ','-separated?)"),
    ({"a.inter": "user_id:token,item_id:token\n1,2\n"}, "recbole:{d}",
     "no column 'item_id' in the header (user_id) (the line has commas"),
    ({"a.inter": INTER + "1;2;3\n"}, "recbole:{d}",
     "found 1 (the line has semicolons: is the file ';'-separated?)"),
    ({"u.data": "1 2 3 4\n"}, "movielens:{d}/u.data",
     "found 1 (the line has spaces: is the file ' '-separated?)"),
    ({"ratings.dat": "1\t2\t3\t4\n"}, "movielens:{d}/ratings.dat",
     "found 1 (the line has tabs: is the file '\\t'-separated?)"),
    ({"ratings.csv": "userId;movieId;rating;timestamp\n1;2;3;4\n"},
     "movielens:{d}/ratings.csv", "no column 'userId' in the header "
     "(userId;movieId;rating;timestamp) (the line has semicolons"),
]


@pytest.mark.parametrize("files, spec, expected", BAD_INPUTS,
                         ids=[case[2][:40] for case in BAD_INPUTS])
def test_bad_input(tmp_path, files, spec, expected):
  _write(tmp_path, files)
  with pytest.raises(InputError) as error:
    sources.load(spec.format(d=tmp_path))
  message = str(error.value)
  assert expected.format(d=tmp_path) in message
  assert "\n" not in message


def _file(path, text: str) -> str:
  """Writes `text` exactly (no newline translation) and returns the path."""
  with open(path, "w", newline="") as f:
    f.write(text)
  return str(path)


def test_inputs_are_not_read_as_something_else(tmp_path):
  pairs = "196 242\n196 302\n186 242\n"
  expect = sources.load(f"sasrec:{_file(tmp_path / 'plain.txt', pairs)}")
  variants = {
      "header.txt": "user_id item_id\n" + pairs,
      "bom.txt": "\ufeff" + pairs,
      "cr.txt": pairs.replace("\n", "\r"),
  }
  for name, text in variants.items():
    got = sources.load(f"sasrec:{_file(tmp_path / name, text)}")
    assert got.user_ids.tolist() == expect.user_ids.tolist(), name
    assert got.item.tolist() == expect.item.tolist(), name
  with gzip.open(tmp_path / "pairs.txt.gz", "wt") as f:
    f.write(pairs)
  got = sources.load(f"sasrec:{tmp_path / 'pairs.txt.gz'}")
  assert got.item_ids.tolist() == expect.item_ids.tolist()
  seq_csv = _file(tmp_path / "seq.csv", "items\n1,2,3\n2,3\n")
  csv_got = sources.load(f"csv:{seq_csv}")
  assert csv_got.num_users == 2 and set(csv_got.item_ids) == {"1", "2", "3"}


def test_recbole_bom_duplicate_columns_and_pipe_genres(tmp_path):
  data = tmp_path / "d"
  data.mkdir()
  _file(data / "d.inter", "\ufeffuser_id:token\titem_id:token\ttimestamp:float\n"
         "1\t10\t1\n1\t11\t2\n2\t10\t3\n")
  _file(data / "d.item", "item_id:token\tgenre:token_seq\n10\tHorror|Drama\n11\tDrama\n")
  got = sources.load(f"recbole:{data}")
  assert got.user_ids.tolist() == ["1", "2"]
  assert got.genre_names == ("Drama", "Horror")
  _file(data / "d.inter", "user_id:token\titem_id:token\titem_id:token\n1\t10\t11\n")
  with pytest.raises(InputError, match=r"line 1: column 'item_id' appears more than once"):
    sources.load(f"recbole:{data}")


def test_ids_are_labels_not_numbers(tmp_path):
  _write(tmp_path, {"seq.txt": "u1 B00X\nu1 B01Y\nuser-2 B00X\n"})
  data = sources.load(f"sasrec:{tmp_path}/seq.txt")
  assert _sequences(data) == {"u1": ["B00X", "B01Y"], "user-2": ["B00X"]}


# pyarrow reads strictly formed text files (`sources._arrow_table`); the line
# reader reads the rest. A blank first line sends a file to the line reader and
# changes nothing else, so each pair below is the same data read both ways.
INTER_FIELDS = ("user", "item", "time", "user_ids", "item_ids")


def _ml100k_ratings(separator: str) -> str:
  with open(os.path.join(ML100K, "ml-100k.inter"), encoding="utf-8") as f:
    rows = [line.rstrip("\n").split("\t") for line in f][1:]
  return "".join(separator.join(row) + "\n" for row in rows)


@needs_ml100k
@needs_beauty
@pytest.mark.parametrize("scheme, name, delimiter, names, make", [
    ("recbole", "d.inter", "\t", None,
     lambda: open(os.path.join(ML100K, "ml-100k.inter"), encoding="utf-8").read()),
    ("movielens", "u.data", "\t", ["u", "i", "r", "t"], lambda: _ml100k_ratings("\t")),
    ("movielens", "ratings.dat", "::", ["u", "i", "r", "t"], lambda: _ml100k_ratings("::")),
    ("movielens", "ratings.csv", ",", None,
     lambda: "userId,movieId,rating,timestamp\n" + _ml100k_ratings(",")),
    ("sasrec", "beauty.txt", " ", ["u", "i"], lambda: open(BEAUTY, encoding="utf-8").read()),
])
def test_the_vectorised_reader_reads_what_the_line_reader_reads(tmp_path, scheme, name,
                                                                delimiter, names, make):
  text = make()
  fast, slow = tmp_path / "fast", tmp_path / "slow"
  for directory, prefix in ((fast, ""), (slow, "\n")):
    directory.mkdir()
    _file(directory / name, prefix + text)
  spec = lambda d: f"{scheme}:{d}" if scheme == "recbole" else f"{scheme}:{d / name}"
  want = [names[0] if names else text.split(delimiter)[0].split(":")[0]]
  assert sources._arrow_table(str(fast / name), delimiter, names, want) is not None
  assert sources._arrow_table(str(slow / name), delimiter, names, want) is None
  got, expected = sources.load(spec(fast)), sources.load(spec(slow))
  for field in INTER_FIELDS:
    np.testing.assert_array_equal(getattr(got, field), getattr(expected, field), field)
  assert got.timestamps == expected.timestamps and len(got) == len(expected) > 90_000


@pytest.mark.parametrize("pairs", [
    "3 1\n10 2\n3 10\n",                         # canonical integers: counted
    "007 1\n7 2\n10 3\n7 007\n",                # leading zeros: distinct labels
    "1000000000000 5\n3 5\n99999999999999 6\n",  # a sparse range: sorted
    "-5 1\n5 2\n+5 3\n",                          # signs: labels, not numbers
    "u1 B00X\nu1 B01Y\nuser-2 B00X\n",            # strings
])
def test_vectorised_labels_are_numbered_as_the_line_reader_numbers_them(tmp_path, pairs):
  fast, slow = _file(tmp_path / "fast.txt", pairs), _file(tmp_path / "slow.txt", "\n" + pairs)
  assert sources._arrow_table(fast, " ", ["u", "i"], ["u", "i"]) is not None
  got, expected = sources.load(f"sasrec:{fast}"), sources.load(f"sasrec:{slow}")
  for field in INTER_FIELDS:
    np.testing.assert_array_equal(getattr(got, field), getattr(expected, field), field)
