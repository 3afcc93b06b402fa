"""One experiment from a config: data, the family's task, training, results.

The config is an `ml_collections.ConfigDict` (see `configs/`): the keys every
family shares are read here, the family reads its own (`config.model` and the
few task keys it documents). `run` is what `launch.train` calls; it is also
the entry point for notebooks and sweep drivers, several in one process.
"""

from __future__ import annotations

import math
import os
from typing import Any

import ml_collections
from absl import logging

from seqrec import errors, mesh as mesh_lib, protocols, registry, sources, synthetic, trainer
from seqrec import workdir as workdir_lib
from seqrec.errors import InputError
from seqrec.interactions import Interactions
from seqrec.trainer import TrainConfig, steps_for_epochs

# Common key -> the smallest value it may take.
_AT_LEAST = {"batch_size": 1, "max_len": 2, "min_len": 2, "min_item_count": 1,
             "min_user_count": 1, "log_every": 1, "model_parallel": 1,
             "eval_every": 0, "checkpoint_every": 0}


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the keys every family shares; one line naming the key on error."""
  errors.require_choice(config.family, registry.FAMILIES, "config.family")
  for key, low in _AT_LEAST.items():
    if config[key] < low:
      raise InputError(f"config.{key}={config[key]}: must be at least {low}")
  errors.require_at_least_one(config, ("num_steps", "num_devices", "vocab_multiple"),
                              "config.")
  for key in ("learning_rate", "num_epochs", "grad_clip"):
    if config[key] is not None and not (math.isfinite(config[key]) and config[key] > 0):
      raise InputError(f"config.{key}={config[key]}: must be positive and finite")
  protocols.parse_sampled(config.protocol.sampled)
  mesh = mesh_lib.make_mesh(config.num_devices, config.model_parallel)
  mesh_lib.check_batch_size(config.batch_size, mesh)
  mesh_lib.check_batch_size(config.eval_batch_size, mesh, "config.eval_batch_size")


def load_data(config: ml_collections.ConfigDict) -> Interactions:
  """The interactions config.dataset names; synthetic data from config.synthetic
  (`SyntheticConfig` fields), whose own seed keeps the data fixed when
  config.seed changes. Files go through the data cache that the environment
  variable `sources.CACHE_ENV` names, if any (binaries: --data_cache)."""
  data = sources.load(config.dataset,
                      synthetic=synthetic.SyntheticConfig(**config.synthetic.to_dict()),
                      cache_dir=os.environ.get(sources.CACHE_ENV))
  logging.info("dataset %s: %d users, %d items, %d interactions", data.name,
               data.num_users, data.num_items, len(data))
  return data


def with_pretraining_data(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` in which a fine-tuning config (one with a `pretrained`
  workdir) whose config.dataset is empty reads the data of its pretraining run."""
  config = config.copy_and_resolve_references()
  if config.get("pretrained") and not config.dataset:
    pretrained, _ = workdir_lib.load(config.pretrained, "config.pretrained")
    config.dataset = pretrained["dataset"]
    config.synthetic.update(pretrained["synthetic"])
  return config


def train_config(config: ml_collections.ConfigDict, workdir: str,
                 num_train_rows: int) -> TrainConfig:
  """The loop settings; steps from config.num_epochs unless config.num_steps."""
  num_steps = config.num_steps or steps_for_epochs(num_train_rows, config.batch_size,
                                                   config.num_epochs)
  return TrainConfig(
      workdir=workdir, num_steps=num_steps, batch_size=config.batch_size,
      learning_rate=config.learning_rate, grad_clip=config.grad_clip, seed=config.seed,
      eval_every=config.eval_every, checkpoint_every=config.checkpoint_every,
      log_every=config.log_every,
      eval_batch_size=config.eval_batch_size, eval_all_splits=config.eval_all_splits,
      select_metric=config.select_metric or None, num_devices=config.num_devices,
      model_parallel=config.model_parallel, pack_targets=config.pack_targets,
      bucket_lengths=config.bucket_lengths, prefetch=config.prefetch,
      row_shards=config.row_shards, patience=config.patience)


def run(config: ml_collections.ConfigDict, workdir: str) -> tuple[dict[str, Any], str]:
  """Builds and trains the experiment `config` in `workdir`.

  Owns the workdir for the run (`workdir.lock`: a second run refuses),
  refuses a workdir that holds another experiment before any work, writes
  config.json and items.npy once the data and task are built, then trains
  (resuming from the latest checkpoint) and writes results.json.

  Returns:
    (results, one summary line).
  """
  validate(config)
  config = with_pretraining_data(config)
  workdir = os.path.abspath(workdir)
  as_dict = config.to_dict()
  with workdir_lib.lock(workdir):
    workdir_lib.check(workdir, as_dict)
    built = registry.build(config, load_data(config))
    loop = train_config(config, workdir, len(next(iter(built.train.values()))))
    trainer.check_task(built.task, loop)
    workdir_lib.save(workdir, as_dict, built.items)
    _, results = trainer.train(built.task, loop, built.train, built.eval)
    results.update(config=as_dict, **built.info)
    path = trainer.write_results(workdir, results)
  shown = ", ".join(f"{k} {results['test'][k]:.4f}" for k in built.report
                    if k in results.get("test", {}))
  return results, f"{config.family}: test {shown}; wrote {path}"
