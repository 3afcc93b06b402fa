r"""Serving benchmark: top-100 users/s against catalogue size and mesh, and many
tasks on one backbone.

  python -m launch.bench_serve --out=docs
  python -m launch.bench_serve --out=/tmp/q --catalogs=1000 --devices=1,2 --tasks=1,4 \
      --users=64 --repeats=2

Part 1 (`recommend`): a GRU4Rec (E=64, h=128, random weights) scores --users
users for top-100 over 10k / 100k / 1M items, on 1 and 8 fake CPU devices,
item tables replicated or split over every device, streamed in --batch_size
batches (`seqrec.recommend.stream`), against the same scoring of all users in
one call (every [U, V] score formed at once) and a host top-K.

Part 2 (`tasks`): PeterRec on one backbone (C=64, 4 blocks, random weights)
with K = 1, 4, 16 tasks: bytes held (one backbone + K patch sets, against K
FineAll models) and the mixed batch's users/s against one task's batch of the
same size and against K separate calls of B/K users.

Writes OUT/bench_serve.json and OUT/bench_serve.png and prints two tables.
"""

import os

# Fake CPU devices must be requested before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import time  # noqa: E402

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from chunkmnr_jax import family as mnr_family, models  # noqa: E402
from peterrec_jax import benchmark as ft_benchmark, finetune, nextitnet, serve  # noqa: E402
from seqrec import benchmark, next_item, optim, recommend  # noqa: E402
from seqrec.task import Experiment, Queries  # noqa: E402

_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_CATALOGS = flags.DEFINE_list("catalogs", ["10000", "100000", "1000000"], "Items.")
_DEVICES = flags.DEFINE_list("devices", ["1", "8"], "Device counts.")
_TASKS = flags.DEFINE_list("tasks", ["1", "4", "16"], "Tasks on one backbone.")
_USERS = flags.DEFINE_integer("users", 1024, "Users scored per measurement.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Users per streamed batch.")
_TOP_K = flags.DEFINE_integer("top_k", 100, "Items per user.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed rounds.")
LENGTH = 50


def _gru4rec(num_items: int, users: int) -> recommend.Recommender:
  config = models.MnrConfig(kind="gru4rec", num_items=num_items, embed_dim=64, hidden=128,
                            vocab_multiple=8)
  task = next_item.make_task(mnr_family.next_item_model(config),
                             param_rules=models.PARAM_RULES)
  rng = np.random.default_rng(0)
  seq = rng.integers(1, num_items + 1, (users, LENGTH)).astype(np.int32)
  items = np.array([""] + [f"i{i}" for i in range(1, num_items + 1)])
  built = Experiment(task=task, train={}, eval={}, items=items, report=(),
                     make_queries=lambda: Queries(seq, np.arange(users).astype(str)))
  params = jax.device_get(task.init(jax.random.key(0)))
  return recommend.Recommender(ml_collections.ConfigDict({"family": "cmnrec"}), built,
                               params, items)


def recommend_records(catalogs, devices, users, batch_size, k, repeats):
  records = []
  for num_items in catalogs:
    model = _gru4rec(num_items, users)
    seq = model.built.queries.seq
    for count in devices:
      for split in sorted({1, count}):
        streamer = recommend.Streamer(model, k=k, batch_size=batch_size,
                                      num_devices=count, model_parallel=split)
        fns = {"streamed": lambda streamer=streamer: [c for _, _, c in streamer(seq)]}
        if split == 1 and count == 1:
          score = jax.jit(model.built.task.score)

          def at_once():
            scores = np.asarray(score(model.params, {"seq": seq}))
            return np.argpartition(-scores, k, axis=1)[:, :k]
          fns["at_once"] = at_once
        for mode, ms in benchmark.interleaved_ms(fns, repeats).items():
          record = {"num_items": num_items, "num_devices": count, "model_parallel": split,
                    "mode": mode, "ms": ms, "users_per_second": 1e3 * users / ms}
          print(record)
          records.append(record)
  return records


def _multitask(num_tasks: int) -> tuple[serve.MultiTask, int]:
  """K random patch sets on one random backbone; also one FineAll model's bytes."""
  config = nextitnet.NextItNetConfig(num_items=1000, channels=64, dilations=(1, 4) * 2,
                                     patch="serial")
  task = finetune.make_finetune_task(
      config, "classification", 8, method="peterrec",
      pretrained=lambda: ft_benchmark.random_backbone(
          nextitnet.NextItNetConfig(num_items=1000, channels=64, dilations=(1, 4) * 2), 0))
  params = task.warm_start(jax.device_get(task.init(jax.random.key(0))))
  labels = optim.labels(params, task.trainable)
  trainable, frozen = optim.split(params, labels)
  rng = np.random.default_rng(1)
  stacked = {"/".join(path): np.stack([np.asarray(v) + 0.01 * rng.normal(size=v.shape)
                                       for _ in range(num_tasks)]).astype(np.float32)
             for path, v in trainable.items()}
  tasks = serve.MultiTask(config, "cls", {"/".join(p): np.asarray(v)
                                          for p, v in frozen.items()},
                          stacked, np.full(num_tasks, 8), np.ones(num_tasks, bool))
  return tasks, optim.nbytes(params)


def task_records(task_counts, users, repeats):
  records = []
  rng = np.random.default_rng(0)
  seq = rng.integers(1, 1001, (users, LENGTH)).astype(np.int32)
  for count in task_counts:
    tasks, fineall_bytes = _multitask(count)
    fn = serve.score_fn(tasks)
    mixed = rng.integers(0, count, users).astype(np.int32)
    one = np.zeros(users, np.int32)
    part = users // count
    fns = {"mixed": lambda: fn(seq, mixed), "one_task": lambda: fn(seq, one),
           "separate_calls": lambda: [fn(seq[i * part:(i + 1) * part],
                                         np.full(part, i, np.int32)) for i in range(count)]}
    ms = benchmark.interleaved_ms(fns, repeats)
    backbone = sum(v.nbytes for v in tasks.frozen.values())
    patch_set = sum(v[0].nbytes for v in tasks.stacked.values())
    record = {"tasks": count, "bytes_held": tasks.nbytes(),
              "bytes_backbone_plus_patches": backbone + count * patch_set,
              "bytes_fineall": count * fineall_bytes,
              **{f"{mode}_users_per_second": 1e3 * users / t for mode, t in ms.items()}}
    record["mixed_vs_one_task"] = ms["one_task"] / ms["mixed"]
    print(record)
    records.append(record)
  return records


def plot(records, path):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(6, 4))
  for (count, split, mode) in sorted({(r["num_devices"], r["model_parallel"], r["mode"])
                                      for r in records}):
    mine = sorted((r["num_items"], r["users_per_second"]) for r in records
                  if (r["num_devices"], r["model_parallel"], r["mode"]) == (count, split, mode))
    ax.plot(*zip(*mine), marker="o",
            label=f"{mode}, {count} device(s), model_parallel={split}")
  ax.set(xscale="log", yscale="log", xlabel="items", ylabel="users / s (top-100)")
  ax.legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def main(argv):
  del argv
  ints = lambda flag: [int(v) for v in flag.value]  # noqa: E731
  tick = time.perf_counter()
  served = recommend_records(ints(_CATALOGS), ints(_DEVICES), _USERS.value,
                             _BATCH_SIZE.value, _TOP_K.value, _REPEATS.value)
  tasks = task_records(ints(_TASKS), _USERS.value, _REPEATS.value)
  benchmark.write_report(_OUT.value, "bench_serve", {
      "settings": {"users": _USERS.value, "batch_size": _BATCH_SIZE.value,
                   "top_k": _TOP_K.value, "repeats": _REPEATS.value,
                   "seconds": time.perf_counter() - tick},
      "recommend": served, "tasks": tasks}, lambda path: plot(served, path))
  print("| items | devices | model_parallel | mode | users/s |\n|---|---|---|---|---|")
  for r in served:
    print(f"| {r['num_items']:,} | {r['num_devices']} | {r['model_parallel']} | {r['mode']} | "
          f"{r['users_per_second']:.0f} |")
  print("| tasks | bytes held | backbone + K patch sets | K FineAll | mixed users/s | "
        "one-task users/s | K separate calls users/s | mixed / one task |\n" + "|---" * 8 + "|")
  for r in tasks:
    print(f"| {r['tasks']} | {r['bytes_held']:,} | {r['bytes_backbone_plus_patches']:,} | "
          f"{r['bytes_fineall']:,} | {r['mixed_users_per_second']:.0f} | "
          f"{r['one_task_users_per_second']:.0f} | "
          f"{r['separate_calls_users_per_second']:.0f} | {r['mixed_vs_one_task']:.2f} |")


if __name__ == "__main__":
  app.run(main)
