"""Experiments from configs: validation before work, data independent of the seed."""

import importlib

import numpy as np
import pytest

from configs import cmnrec
from seqrec import experiment, registry
from seqrec.errors import InputError


def test_config_seed_changes_initialisation_not_the_synthetic_data():
  config = cmnrec.get_config("tiny")
  first = experiment.load_data(config)
  config.seed = 7
  second = experiment.load_data(config)
  np.testing.assert_array_equal(first.item, second.item)
  np.testing.assert_array_equal(first.user, second.user)
  config.synthetic.seed = 7
  assert not np.array_equal(first.item, experiment.load_data(config).item)


@pytest.mark.parametrize("key, value, message", [
    ("learning_rate", float("inf"), "config.learning_rate=inf: must be positive and finite"),
    ("learning_rate", float("nan"), "config.learning_rate=nan"),
    ("grad_clip", 0.0, "config.grad_clip=0.0: must be positive and finite"),
    ("num_devices", 0, "config.num_devices=0: must be at least 1"),
    ("num_steps", 0, "config.num_steps=0: must be at least 1"),
    ("family", "gpt", "config.family='gpt': must be one of"),
    ("eval_batch_size", 6, "config.eval_batch_size=6 is not divisible by the 8"),
])
def test_bad_common_settings_are_one_line(key, value, message):
  config = cmnrec.get_config("tiny")
  config[key] = value
  with pytest.raises(InputError, match=message.replace("(", r"\(")):
    experiment.validate(config)


@pytest.mark.parametrize("config_name, overrides, message", [
    ("cmnrec", dict(split="random"), "config.train_stride=2: not for config.split=random"),
    ("nextitnet", dict(mode="masked"), "config.train_stride=2: only for config.mode=causal"),
    ("peterrec", dict(dataset="synthetic"), "config.train_stride=2: fine-tuning reads each user's sequence"),
    ("sasrec", dict(train_stride=12), r"config.train_stride=12: must be in \[1, "),
])
def test_train_stride_only_where_training_windows_are_cut(config_name, overrides, message):
  config = importlib.import_module(f"configs.{config_name}").get_config("tiny")
  config.train_stride = 2
  config.update(overrides)
  with pytest.raises(InputError, match=message):
    registry.build(config, experiment.load_data(config))


def test_grad_clip_reaches_the_loop_and_is_off_by_default():
  config = cmnrec.get_config("tiny")
  assert experiment.train_config(config, "/w", 100).grad_clip is None
  config.grad_clip = 5.0
  assert experiment.train_config(config, "/w", 100).grad_clip == 5.0


def test_train_config_takes_steps_from_epochs_unless_given():
  config = cmnrec.get_config("tiny")
  assert experiment.train_config(config, "/w", 100).num_steps == 4
  config.num_steps = None
  config.num_epochs = 2.0
  loop = experiment.train_config(config, "/w", 100)
  assert loop.num_steps == 12 and loop.workdir == "/w"  # 2 x (100 // 16)
