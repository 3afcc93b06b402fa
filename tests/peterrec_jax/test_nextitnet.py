"""NextItNet trunk: parameter paths, causality, patches that start as the identity,
dropout in training only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from peterrec_jax.nextitnet import NextItNet, NextItNetConfig
from seqrec.errors import InputError

NUM_ITEMS, LENGTH = 30, 12


def tiny(**overrides) -> NextItNetConfig:
  return NextItNetConfig(**{"num_items": NUM_ITEMS, "channels": 8, "dilations": (1, 2),
                            **overrides})


def tokens(seed: int = 0) -> jnp.ndarray:
  return jnp.asarray(np.random.default_rng(seed).integers(1, NUM_ITEMS + 1, (2, LENGTH)),
                     jnp.int32)


def paths(params) -> set[str]:
  return set(traverse_util.flatten_dict(params, sep="/"))


def test_parameter_paths_are_stable_and_patches_only_add():
  plain = NextItNet(tiny()).init(jax.random.key(0), tokens())
  patched = NextItNet(tiny(patch="serial")).init(jax.random.key(0), tokens())
  block = {f"params/block_0/{layer}/{leaf}" for layer in ("conv1", "conv2")
           for leaf in ("kernel", "bias")}
  block |= {f"params/block_0/{ln}/{leaf}" for ln in ("ln1", "ln2")
            for leaf in ("scale", "bias")}
  assert block | {"params/embed/embedding"} <= paths(plain)
  assert len(paths(plain)) == 1 + 2 * len(block)
  added = paths(patched) - paths(plain)
  assert paths(plain) <= paths(patched)
  assert added == {f"params/block_{b}/patch{p}/{d}/{leaf}" for b in (0, 1) for p in (1, 2)
                   for d in ("down", "up") for leaf in ("kernel", "bias")}
  flat = traverse_util.flatten_dict(patched, sep="/")
  assert flat["params/embed/embedding"].shape == (NUM_ITEMS + 3, 8)
  assert flat["params/block_0/conv1/kernel"].shape == (3, 8, 8)
  assert flat["params/block_0/patch1/down/kernel"].shape == (8, 2)  # C/4


@pytest.mark.parametrize("causal", [True, False])
def test_causal_outputs_ignore_the_future(causal):
  model = NextItNet(tiny(causal=causal))
  params = model.init(jax.random.key(0), tokens())
  apply = jax.jit(model.apply)
  x = tokens(1)
  t = 5
  changed = x.at[:, t + 1:].set((x[:, t + 1:] % NUM_ITEMS) + 1)
  before, after = np.asarray(apply(params, x)), np.asarray(apply(params, changed))
  if causal:
    np.testing.assert_array_equal(before[:, :t + 1], after[:, :t + 1])
  else:
    # "Same" convolutions see the right context: position t changes.
    assert np.abs(before[:, t] - after[:, t]).max() > 1e-4
  assert np.abs(before[:, t + 1:] - after[:, t + 1:]).max() > 1e-4


@pytest.mark.parametrize("patch", ["serial", "parallel"])
def test_patched_network_equals_pretrained_one_at_init(patch):
  plain, patched = NextItNet(tiny()), NextItNet(tiny(patch=patch))
  pretrained = plain.init(jax.random.key(0), tokens())
  fresh = traverse_util.flatten_dict(patched.init(jax.random.key(1), tokens()), sep="/")
  # Pretrained trunk by path, patches at their init.
  params = traverse_util.unflatten_dict(
      {**fresh, **traverse_util.flatten_dict(pretrained, sep="/")}, sep="/")
  x = tokens(2)
  np.testing.assert_array_equal(plain.apply(pretrained, x), patched.apply(params, x))
  # The patches are wired in: a non-zero up-projection changes the output.
  flat = traverse_util.flatten_dict(params, sep="/")
  # (Random, not constant: LayerNorm would cancel a shift shared by all channels.)
  flat["params/block_1/patch2/up/kernel"] = jax.random.normal(jax.random.key(3), (2, 8))
  nudged = patched.apply(traverse_util.unflatten_dict(flat, sep="/"), x)
  assert np.abs(np.asarray(nudged) - np.asarray(plain.apply(pretrained, x))).max() > 1e-3


def test_dropout_only_in_training_and_adds_no_parameters():
  plain, dropped = NextItNet(tiny()), NextItNet(tiny(dropout=0.5))
  params = plain.init(jax.random.key(0), tokens())
  assert paths(dropped.init(jax.random.key(0), tokens())) == paths(params)
  x = tokens(1)
  np.testing.assert_array_equal(plain.apply(params, x), dropped.apply(params, x))
  train = [np.asarray(dropped.apply(params, x, train=True, rngs={"dropout": jax.random.key(s)}))
           for s in (1, 2)]
  assert np.abs(train[0] - np.asarray(plain.apply(params, x))).max() > 1e-3
  assert np.abs(train[0] - train[1]).max() > 1e-3


def test_config_rejects_nonsense():
  for bad in (dict(patch="sideways"), dict(dilations=()), dict(channels=0),
              dict(patch_dim=0), dict(num_items=1), dict(dropout=1.0), dict(dropout=-0.1)):
    with pytest.raises(InputError):
      tiny(**bad).validate()
