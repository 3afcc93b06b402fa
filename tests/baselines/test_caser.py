"""Caser: its windows, its shapes, and that it learns through the trainer."""

import jax
import jax.numpy as jnp
import numpy as np

from baselines import caser
from tests.baselines.learning import hr10_against_popularity, learnable_config


def test_windows_hold_the_last_items_with_zeros_before_the_start():
  x = jnp.arange(1, 5)[None, :, None]  # [1, 4, 1]
  got = caser._windows(x, 3)[0, :, :, 0]
  np.testing.assert_array_equal(got, [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]])


def test_a_step_sees_only_its_window_of_past_items():
  config = caser.CaserConfig(num_items=20, embed_dim=8, window=3, horizontal=4,
                             vertical=2, hidden=8, dropout=0.0)
  model = caser.Caser(config)
  inputs = jnp.asarray(np.random.default_rng(0).integers(1, 21, (2, 9)), jnp.int32)
  params = model.init(jax.random.key(0), inputs, method=caser.Caser.logits)
  hidden = model.apply(params, inputs)
  assert hidden.shape == (2, 9, 8)
  changed = model.apply(params, inputs.at[:, 5].set(3))
  # Step t sees t-2..t: a change at 5 moves steps 5, 6, 7 only.
  np.testing.assert_array_equal(hidden[:, :5], changed[:, :5])
  np.testing.assert_array_equal(hidden[:, 8:], changed[:, 8:])
  assert not np.allclose(hidden[:, 5:8], changed[:, 5:8])
  # Left padding reads as zero embeddings, like the start of a sequence.
  padded = model.apply(params, inputs.at[:, :3].set(0))
  np.testing.assert_array_equal(padded[:, 5:], hidden[:, 5:])


def test_caser_beats_popularity_on_synthetic_data(tmp_path):
  model, popular = hr10_against_popularity(learnable_config("caser"), str(tmp_path))
  assert model > popular + 0.05, (model, popular)
