"""The hand-off between `launch.pretrain` and `launch.finetune`.

A pretraining workdir holds, beside its checkpoints, the backbone's config and
the item vocabulary it was trained on, so fine-tuning rebuilds the same network
and refuses data whose item ids would not line up.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from peterrec_jax import nextitnet
from seqrec.errors import InputError

CONFIG_FILE = "pretrain_config.json"
ITEM_INDEX_FILE = "item_index.npy"


def save(workdir: str, config: nextitnet.NextItNetConfig, item_index: np.ndarray,
         **extra) -> None:
  """Writes the config (plus `extra` JSON fields) and the dense-id -> item map."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
    json.dump({"model": dataclasses.asdict(config), **extra}, f, indent=2)
  np.save(os.path.join(workdir, ITEM_INDEX_FILE), item_index)


def load(workdir: str) -> tuple[nextitnet.NextItNetConfig, dict, np.ndarray]:
  """(backbone config, the extra fields, item_index) of a pretraining workdir."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise InputError(f"--pretrained={workdir}: no {CONFIG_FILE}; is it a "
                     "launch.pretrain workdir?")
  with open(path) as f:
    setup = json.load(f)
  model = setup.pop("model")
  config = nextitnet.NextItNetConfig(**{**model, "dilations": tuple(model["dilations"])})
  return config, setup, np.load(os.path.join(workdir, ITEM_INDEX_FILE))
