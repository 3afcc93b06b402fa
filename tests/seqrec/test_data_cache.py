"""Tests for the on-disk cache of read datasets (`seqrec.data_cache`)."""

import os

import numpy as np

from configs import cmnrec
from seqrec import next_item, sources
from tests.paths import ML100K, needs_ml100k

FIELDS = ("user", "item", "time", "user_ids", "item_ids", "item_genres")


@needs_ml100k
def test_a_second_load_maps_what_the_first_read(tmp_path):
  cache = str(tmp_path / "cache")
  spec = f"recbole:{ML100K}"
  read = sources.load(spec, cache_dir=cache)
  mapped = sources.load(spec, cache_dir=cache)
  assert not mapped.user.flags.writeable and read.user.flags.writeable  # mapped read-only
  for field in FIELDS:
    np.testing.assert_array_equal(getattr(mapped, field), getattr(read, field), field)
  for key, values in read.user_features.items():
    np.testing.assert_array_equal(mapped.user_features[key], values)
  assert (mapped.name, mapped.feature_vocab, mapped.genre_names, mapped.timestamps) == (
      read.name, read.feature_vocab, read.genre_names, read.timestamps)
  entries = os.listdir(cache)
  assert len(entries) == 1 and ".tmp" not in entries[0]  # whole, under its final name


def test_a_changed_file_is_read_again(tmp_path):
  cache, path = str(tmp_path / "cache"), tmp_path / "pairs.txt"
  path.write_text("1 10\n1 11\n2 10\n")
  assert len(sources.load(f"sasrec:{path}", cache_dir=cache)) == 3
  path.write_text("1 10\n1 11\n2 10\n2 12\n")
  data = sources.load(f"sasrec:{path}", cache_dir=cache)
  assert len(data) == 4 and data.item_ids.tolist() == ["10", "11", "12"]
  assert len(os.listdir(cache)) == 2


def test_a_cache_that_cannot_be_written_costs_nothing_but_speed(tmp_path):
  path = tmp_path / "pairs.txt"
  path.write_text("1 10\n1 11\n2 10\n")
  blocked = tmp_path / "file"
  blocked.write_text("")  # a file where the cache directory would be
  data = sources.load(f"sasrec:{path}", cache_dir=str(blocked / "cache"))
  assert len(data) == 3 and data.user.flags.writeable and not data.cache_entry


@needs_ml100k
def test_sequences_and_splits_are_kept_beneath_their_dataset(tmp_path):
  config = cmnrec.get_config("ml100k")
  cache = str(tmp_path / "cache")
  data = sources.load(config.dataset, cache_dir=cache)
  first_seqs, first = next_item.prepared(config, data)
  mapped = sources.load(config.dataset, cache_dir=cache)
  seqs, splits = next_item.prepared(config, mapped)
  assert not splits.train.seqs.flags.writeable
  plain_seqs, plain = next_item.prepared(config, sources.load(config.dataset))
  for got in (first, splits):
    for part in ("train", "valid", "test"):
      for name in ("seqs", "users", "ends"):
        np.testing.assert_array_equal(getattr(getattr(got, part), name),
                                      getattr(getattr(plain, part), name))
  for name in ("flat", "offsets", "flat_times", "users", "item_index"):
    np.testing.assert_array_equal(getattr(seqs, name), getattr(plain_seqs, name))
  assert seqs.num_items == plain_seqs.num_items == first_seqs.num_items
  config.max_len = 21  # other settings, another entry
  assert next_item.prepared(config, mapped)[1].train.seqs.shape[1] == 21
  assert len(os.listdir(os.path.join(mapped.cache_entry, "derived"))) == 2
