"""SASRec: causal and blind to padding, and it learns through the trainer."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import sasrec
from configs import sasrec as sasrec_configs
from seqrec import experiment, next_item, packing, registry, trainer
from seqrec.errors import InputError
from tests.baselines.learning import hr10_against_popularity, learnable_config

CONFIG = sasrec.SASRecConfig(num_items=20, max_steps=9, hidden=8, num_blocks=2,
                             num_heads=2, dropout=0.0)
# RecBole's block: a 4D-wide GELU feed-forward net.
WIDE_GELU = sasrec.SASRecConfig(num_items=20, max_steps=9, hidden=8, num_blocks=2,
                                num_heads=2, dropout=0.0, ffn_dim=32, activation="gelu")
# RecBole's whole SASRec: that block in its post-LayerNorm layout.
RECBOLE = dataclasses.replace(WIDE_GELU, norm="post")


def _model_and_inputs(config=CONFIG):
  model = sasrec.SASRec(config)
  inputs = jnp.asarray(np.random.default_rng(0).integers(1, 21, (3, 9)), jnp.int32)
  inputs = inputs.at[0, :4].set(0)  # one left-padded row
  return model, model.init(jax.random.key(0), inputs), inputs


@pytest.mark.parametrize("config", [CONFIG, WIDE_GELU, RECBOLE],
                         ids=["paper", "wide_gelu", "recbole"])
@pytest.mark.parametrize("position", [4, 6, 8])
def test_a_later_item_never_changes_an_earlier_prediction(position, config):
  model, params, inputs = _model_and_inputs(config)
  hidden = model.apply(params, inputs)
  changed = model.apply(params, inputs.at[:, position].set(7))
  np.testing.assert_allclose(hidden[:, :position], changed[:, :position], atol=1e-6)
  assert not np.allclose(hidden[:, position:], changed[:, position:])


@pytest.mark.parametrize("config", [CONFIG, RECBOLE], ids=["paper", "recbole"])
def test_padding_is_never_attended_to(config):
  model, params, inputs = _model_and_inputs(config)
  hidden = model.apply(params, inputs)
  # Row 0 starts at position 4: shorter left padding of the same items, cut
  # to the same positions, gives the same states at every real step.
  np.testing.assert_allclose(model.apply(params, inputs[:1, 2:])[:, 2:], hidden[:1, 4:],
                             atol=1e-5)
  assert np.all(np.isfinite(hidden))


def test_the_feed_forward_width_and_activation_are_the_configured_ones():
  model, params, inputs = _model_and_inputs(WIDE_GELU)
  block = params["params"]["block_0"]
  assert block["ffn1"]["kernel"].shape == (8, 32)
  assert block["ffn2"]["kernel"].shape == (32, 8)
  relu = sasrec.SASRec(dataclasses.replace(WIDE_GELU, activation="relu"))
  assert not np.allclose(model.apply(params, inputs), relu.apply(params, inputs))
  paper = _model_and_inputs()[1]["params"]["block_0"]
  assert paper["ffn1"]["kernel"].shape == (8, 8)
  with pytest.raises(InputError, match="config.model.activation='tanh'"):
    sasrec.SASRecConfig(num_items=20, max_steps=9, activation="tanh")


def test_the_post_layout_normalises_the_embeddings_and_each_residual():
  model, params, inputs = _model_and_inputs(RECBOLE)
  assert "ln_embed" in params["params"] and "ln_final" not in params["params"]
  hidden = model.apply(params, inputs)
  # Each block ends in a LayerNorm (unit scale, zero bias at init): every real
  # step's state has mean 0 and variance 1 over D.
  real = np.asarray(inputs != 0)
  np.testing.assert_allclose(hidden.mean(-1)[real], 0.0, atol=1e-5)
  np.testing.assert_allclose(hidden.var(-1)[real], 1.0, atol=1e-3)
  pre, pre_params, _ = _model_and_inputs(WIDE_GELU)
  assert "ln_embed" not in pre_params["params"] and "ln_final" in pre_params["params"]
  assert not np.allclose(pre.apply(pre_params, inputs), hidden, atol=1e-3)
  with pytest.raises(InputError, match="config.model.norm='mid'"):
    sasrec.SASRecConfig(num_items=20, max_steps=9, norm="mid")


def test_sasrec_beats_popularity_on_synthetic_data(tmp_path):
  model, popular = hr10_against_popularity(learnable_config("sasrec"), str(tmp_path))
  assert model > popular + 0.05, (model, popular)


def test_stride_one_trains_each_window_on_its_last_target_only():
  """RecBole's training rows: each target predicted from its full prefix."""
  config = sasrec_configs.get_config("tiny")
  config.model.dropout = 0.0
  config.train_stride = 1
  built = registry.build(config, experiment.load_data(config))
  seq = built.train["seq"][:16]
  assert np.all(built.train[next_item.TRAIN_TARGETS] == 1)
  params = built.task.init(jax.random.key(0))
  loss, _ = built.task.loss(params, {"seq": jnp.asarray(seq), next_item.TRAIN_TARGETS:
                                     jnp.ones(16, jnp.int32)}, jax.random.key(1))
  scores = built.task.score(params, {"seq": jnp.asarray(seq[:, :-1])})
  expected = jax.nn.logsumexp(scores, axis=1) - scores[np.arange(16), seq[:, -1]]
  np.testing.assert_allclose(loss, jnp.mean(expected), rtol=1e-5)
  # Disjoint windows: more targets per row, fewer rows.
  config.train_stride = None
  plain = registry.build(config, experiment.load_data(config))
  assert next_item.TRAIN_TARGETS not in plain.train
  assert len(plain.train["seq"]) < len(built.train["seq"])


def _train_losses(workdir, task, data, **overrides):
  config = trainer.TrainConfig(workdir=str(workdir), num_steps=4, batch_size=16, log_every=1,
                               eval_batch_size=16, learning_rate=1e-2, **overrides)
  trainer.train(task, config, data, {"valid": {"seq": data["seq"][:16]}})
  with open(workdir / "metrics.jsonl") as f:
    return [r["loss"] for r in map(json.loads, f) if r["split"] == "train"]


def test_strided_windows_train_alike_on_eight_devices_and_one(tmp_path):
  """The per-row target counts shard with their rows, and size the packed loss
  and the length buckets as the rows do."""
  config = sasrec_configs.get_config("tiny")
  config.model.dropout = 0.0
  config.train_stride = 3
  built = registry.build(config, experiment.load_data(config))
  runs = [_train_losses(tmp_path / str(devices), built.task, built.train,
                        num_devices=devices, bucket_lengths=True)
          for devices in (8, 1)]
  np.testing.assert_allclose(runs[0], runs[1], atol=1e-5)
  # Fewer targets than disjoint windows' per row: the loss is packed.
  loop = trainer.Trainer(built.task, trainer.TrainConfig(workdir=str(tmp_path), batch_size=16,
                                                         num_steps=1, num_devices=1))
  assert packing.KEY in loop.train_batch(built.train, 0)
