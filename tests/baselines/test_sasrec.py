"""SASRec: causal and blind to padding, and it learns through the trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import sasrec
from tests.baselines.learning import hr10_against_popularity, learnable_config

CONFIG = sasrec.SASRecConfig(num_items=20, max_steps=9, hidden=8, num_blocks=2,
                             num_heads=2, dropout=0.0)


def _model_and_inputs():
  model = sasrec.SASRec(CONFIG)
  inputs = jnp.asarray(np.random.default_rng(0).integers(1, 21, (3, 9)), jnp.int32)
  inputs = inputs.at[0, :4].set(0)  # one left-padded row
  return model, model.init(jax.random.key(0), inputs), inputs


@pytest.mark.parametrize("position", [4, 6, 8])
def test_a_later_item_never_changes_an_earlier_prediction(position):
  model, params, inputs = _model_and_inputs()
  hidden = model.apply(params, inputs)
  changed = model.apply(params, inputs.at[:, position].set(7))
  np.testing.assert_allclose(hidden[:, :position], changed[:, :position], atol=1e-6)
  assert not np.allclose(hidden[:, position:], changed[:, position:])


def test_padding_is_never_attended_to():
  model, params, inputs = _model_and_inputs()
  hidden = model.apply(params, inputs)
  # Row 0 starts at position 4: shorter left padding of the same items, cut
  # to the same positions, gives the same states at every real step.
  np.testing.assert_allclose(model.apply(params, inputs[:1, 2:])[:, 2:], hidden[:1, 4:],
                             atol=1e-5)
  assert np.all(np.isfinite(hidden))


def test_sasrec_beats_popularity_on_synthetic_data(tmp_path):
  model, popular = hr10_against_popularity(learnable_config("sasrec"), str(tmp_path))
  assert model > popular + 0.05, (model, popular)
