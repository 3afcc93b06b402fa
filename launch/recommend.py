r"""Top-K recommendations (or predicted labels) out of a trained workdir.

  python -m launch.recommend --workdir=/tmp/tsc --top_k=10 --out=/tmp/top10.csv
  python -m launch.recommend --workdir=/tmp/tsc --top_k=10 --exclude_seen \
      --users=users.txt --out=/tmp/top10.jsonl
  python -m launch.recommend --workdir=/tmp/tsc --sequences=queries.csv --out=/tmp/q.csv

Queries: every user of the workdir's dataset (default); --users=FILE, one raw
user id per line; or --sequences=FILE, one `query_id,item,item,...` line per
query with raw item ids, oldest first. Output by extension: .csv (header
`user_id,item_id,score,rank`; a profile-task workdir writes
`user_id,label,probability`) or .jsonl (one object per user). The file is
written under a temporary name and renamed at the end, so a killed run leaves
no half file. Users stream through in --batch_size batches over the mesh.
Without --exclude_seen it also reports the share of the top-K slots that hold
items the user already has (on data without repeats, slots no target fills).
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
from absl import flags

from launch import common
from seqrec import recommend
from seqrec.errors import InputError

TOP_K = flags.DEFINE_integer("top_k", 10, "Items per user.")
USERS = flags.DEFINE_string("users", None, "File of raw user ids, one per line.")
SEQUENCES = flags.DEFINE_string(
    "sequences", None, "File of `query_id,item,item,...` lines (raw ids, oldest first).")
EXCLUDE_SEEN = flags.DEFINE_bool("exclude_seen", False,
                                 "Leave out the items each user already has.")
OUT = flags.DEFINE_string("out", None, "Output file, .csv or .jsonl.", required=True)
BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Users per batch (all devices).")
NUM_DEVICES = flags.DEFINE_integer("num_devices", None, "Devices to use (default: all).")
MODEL_PARALLEL = flags.DEFINE_integer("model_parallel", 1,
                                      "Devices per item-table shard group.")
FORMATS = (".csv", ".jsonl")


def _lines(path: str, flag: str) -> list[str]:
  try:
    with open(path, encoding="utf-8-sig") as f:
      return [line.strip() for line in f if line.strip()]
  except OSError as error:
    raise InputError(f"{flag}={path}: {error.strerror}") from None


def queries(model: recommend.Recommender) -> tuple[np.ndarray, np.ndarray, list | None]:
  """(query ids, int32 [N, L] inputs, seen columns per row) from the flags."""
  built = model.built
  if SEQUENCES.value:
    rows = [line.split(",") for line in _lines(SEQUENCES.value, "--sequences")]
    histories = [[item.strip() for item in row[1:] if item.strip()] for row in rows]
    seq = recommend.encode(histories, model.items, model.input_length,
                           f"--sequences={SEQUENCES.value}")
    index = recommend.item_index(model.items)
    return (np.array([row[0] for row in rows]), seq,
            [np.array([index[i] for i in h], np.int32) for h in histories])
  ids, seq, seen = built.queries.ids, built.queries.seq, built.queries.seen
  if USERS.value:
    wanted = _lines(USERS.value, "--users")
    position = {user: row for row, user in enumerate(ids)}
    unknown = [(n + 1, u) for n, u in enumerate(wanted) if u not in position]
    if unknown:
      raise InputError(f"--users={USERS.value} line {unknown[0][0]}: user "
                       f"{unknown[0][1]!r} is not in the workdir's dataset")
    rows = np.array([position[u] for u in wanted], np.int64)
    return ids[rows], seq[rows], None if seen is None else [seen[r] for r in rows]
  return ids, seq, seen


def main(argv: list[str]) -> None:
  del argv
  extension = os.path.splitext(OUT.value)[1]
  if extension not in FORMATS:
    raise InputError(f"--out={OUT.value}: the extension must be one of {FORMATS}")
  if USERS.value and SEQUENCES.value:
    raise InputError("--users and --sequences: give one of them")
  model = recommend.load(common.WORKDIR.value)
  ids, seq, seen = queries(model)
  classes = model.built.classes
  k = 1 if classes else TOP_K.value
  count_seen = not classes and not EXCLUDE_SEEN.value and seen is not None
  repeats = 0
  tmp = f"{OUT.value}.tmp-{os.getpid()}"
  try:
    with open(tmp, "w", newline="") as f:
      writer = csv.writer(f) if extension == ".csv" else None
      if writer:
        writer.writerow(["user_id", "label", "probability"] if classes
                        else ["user_id", "item_id", "score", "rank"])
      for rows, scores, columns in recommend.stream(
          model, seq, seen, k=k, exclude_seen=EXCLUDE_SEEN.value,
          batch_size=BATCH_SIZE.value, num_devices=NUM_DEVICES.value,
          model_parallel=MODEL_PARALLEL.value):
        if count_seen:
          repeats += recommend.seen_count(columns, seen[rows])
        for user, top, at in zip(ids[rows], scores, columns):
          names = model.items[at]
          if classes:
            record = [user, names[0], float(np.exp(top[0]))]
            if writer:
              writer.writerow(record)
            else:
              f.write(json.dumps(dict(zip(("user_id", "label", "probability"), record)))
                      + "\n")
          elif writer:
            writer.writerows([user, item, float(score), rank + 1]
                             for rank, (item, score) in enumerate(zip(names, top)))
          else:
            f.write(json.dumps({"user_id": str(user), "items": names.tolist(),
                                "scores": top.tolist()}) + "\n")
    os.replace(tmp, OUT.value)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  share = (f"; {repeats / (len(ids) * k):.1%} of the slots are items the user already has"
           if count_seen else "")
  common.report(f"wrote {len(ids)} users' {'labels' if classes else f'top-{k}'} "
                f"to {OUT.value}{share}")


if __name__ == "__main__":
  common.run(main)
