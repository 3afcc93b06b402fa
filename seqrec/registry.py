"""Model families by name: `config.family` -> the module that builds it.

A family module provides `build(config, data) -> seqrec.task.Experiment`.
Modules are named as strings and imported on use, so the core depends on no
family and adding one is one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from seqrec.interactions import Interactions
from seqrec.task import Experiment

FAMILIES = {
    "cmnrec": "chunkmnr_jax.family",
    "nextitnet": "peterrec_jax.pretrain",
    "peterrec": "peterrec_jax.finetune",
    "caser": "baselines.caser",
    "sasrec": "baselines.sasrec",
}


def build(config: Any, data: Interactions) -> Experiment:
  """The experiment of `config.family` on `data`."""
  return importlib.import_module(FAMILIES[config.family]).build(config, data)
