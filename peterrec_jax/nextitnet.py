"""NextItNet: a stack of dilated 1-D convolutions over item sequences, with
optional PeterRec model patches.

Token ids: 0 is padding, 1..num_items are items, `num_items + 1` is the mask
token of masked (GRec-style) pretraining and `num_items + 2` the [CLS] token of
fine-tuning; the input embedding has `num_items + 3` rows. Output layers and
task heads live with the tasks (`pretrain`, `finetune`), which share this
trunk's parameter scope, so a parameter path such as
"params/block_0/conv1/kernel" is the same in every model built on it, patched
or not.

Item tables (this embedding, the tasks' output layers) are padded to a
multiple of `vocab_multiple` rows or columns, so they split evenly over the
mesh's `model` axis; with `dtype` "bfloat16" activations and matmuls run in
bfloat16 from float32 parameters.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqrec import errors, mesh, precision
from seqrec.errors import InputError

PATCH_KINDS = ("serial", "parallel")
LAYER_NORM_EPS = 1e-8
weight_init = nn.initializers.truncated_normal(stddev=0.02)


@dataclasses.dataclass(frozen=True)
class NextItNetConfig:
  """Shape of the network.

  Attributes:
    num_items: items have ids 1..num_items.
    channels: width C of embeddings and convolutions (256 in the paper).
    dilations: dilation d of each residual block; its two convolutions use d
      and 2d. The default is the paper's 8 blocks, [1, 4] repeated 4 times.
    kernel_size: width of every dilated convolution.
    causal: causal convolutions (left padding (k-1)*dilation) for next-item
      pretraining; False for "same" convolutions (masked pretraining).
    patch: None, "serial" or "parallel" model patches in every block.
    patch_dim: bottleneck width of a patch; None means channels // 4.
    vocab_multiple: pad the item embedding and the tasks' item output layers
      to a multiple of this many rows / columns (for model parallelism).
    dtype: compute dtype, one of `precision.DTYPES`; parameters stay float32.
    dropout: rate on each block's residual branch, in training only (0 in the
      paper; a tuning axis here). Fine-tuning and serving run the trunk
      deterministically.
  """

  num_items: int
  channels: int = 256
  dilations: tuple[int, ...] = (1, 4) * 4
  kernel_size: int = 3
  causal: bool = True
  patch: str | None = None
  patch_dim: int | None = None
  vocab_multiple: int = 1
  dtype: str = "float32"
  dropout: float = 0.0

  @property
  def mask_id(self) -> int:
    return self.num_items + 1

  @property
  def cls_id(self) -> int:
    return self.num_items + 2

  @property
  def vocab_size(self) -> int:
    """Rows of the input embedding: padding, items, mask and [CLS]."""
    return self.num_items + 3

  def padded(self, size: int) -> int:
    """Rows or columns of an item table of `size` real entries, padded."""
    return mesh.pad_to_multiple(size, self.vocab_multiple)

  @property
  def compute_dtype(self) -> jnp.dtype:
    return precision.compute_dtype(self.dtype)

  @property
  def bottleneck(self) -> int:
    return self.patch_dim if self.patch_dim is not None else max(1, self.channels // 4)

  def validate(self) -> "NextItNetConfig":
    """Raises InputError on settings that make no sense; returns self."""
    if self.num_items < 2:
      raise InputError(f"num_items={self.num_items}: need at least 2 items")
    errors.require_at_least_one(self, ("channels", "kernel_size"), "config.model.")
    if not self.dilations or min(self.dilations) < 1:
      raise InputError(f"config.model.dilations={list(self.dilations)}: need at least one "
                       "block and every dilation positive")
    errors.require_choice(self.patch, (*PATCH_KINDS, None), "config.patch")
    errors.require_at_least_one(self, ("patch_dim", "vocab_multiple"), "config.")
    errors.require_rate(self.dropout, "config.model.dropout")
    precision.compute_dtype(self.dtype)  # InputError on an unknown --dtype
    return self


class Patch(nn.Module):
  """The bottleneck branch of a model patch: W_up(GELU(W_down(x))), per position.

  W_up (kernel and bias) starts at zero, so the branch outputs exactly 0 and a
  freshly patched network computes the pretrained function.
  """

  bottleneck: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, L, C] -> [B, L, C]."""
    h = nn.Dense(self.bottleneck, kernel_init=weight_init, dtype=self.dtype,
                 name="down")(x)
    return nn.Dense(x.shape[-1], kernel_init=nn.initializers.zeros, dtype=self.dtype,
                    name="up")(nn.gelu(h))


class ResidualBlock(nn.Module):
  """conv(d) -> LN -> ReLU -> conv(2d) -> LN -> ReLU, plus the input (post-norm).

  With serial patches each convolution's output h becomes h + P(h) (the patch
  with its identity); with parallel patches it becomes h + P(conv input).
  """

  config: NextItNetConfig
  dilation: int

  def _conv(self, x: jax.Array, dilation: int, name: str) -> jax.Array:
    reach = (self.config.kernel_size - 1) * dilation
    # Causal: every output sees only its own and earlier positions.
    padding = (reach, 0) if self.config.causal else (reach // 2, reach - reach // 2)
    return nn.Conv(self.config.channels, (self.config.kernel_size,),
                   kernel_dilation=(dilation,), padding=(padding,),
                   kernel_init=weight_init, dtype=self.config.compute_dtype, name=name)(x)

  def _patched(self, h: jax.Array, conv_input: jax.Array, name: str) -> jax.Array:
    if self.config.patch is None:
      return h
    branch_input = h if self.config.patch == "serial" else conv_input
    return h + Patch(self.config.bottleneck, self.config.compute_dtype, name=name)(
        branch_input)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """[B, L, C] -> [B, L, C]; `train` applies config.dropout to the branch."""
    dtype = self.config.compute_dtype
    h = self._patched(self._conv(x, self.dilation, "conv1"), x, "patch1")
    a = nn.relu(nn.LayerNorm(LAYER_NORM_EPS, dtype=dtype, name="ln1")(h))
    h = self._patched(self._conv(a, 2 * self.dilation, "conv2"), a, "patch2")
    branch = nn.relu(nn.LayerNorm(LAYER_NORM_EPS, dtype=dtype, name="ln2")(h))
    return x + nn.Dropout(self.config.dropout, deterministic=not train)(branch)


class NextItNet(nn.Module):
  """The trunk: token ids [B, L] -> hidden states [B, L, C].

  Parameters: "embed/embedding" [padded(vocab_size), C] and "block_{i}/..." for every
  block (conv1, ln1, conv2, ln2 and, when patched, patch1/patch2 with
  down/up). No output layer: the tasks add theirs.
  """

  config: NextItNetConfig

  @nn.compact
  def __call__(self, tokens: jax.Array, train: bool = False) -> jax.Array:
    """[B, L] -> [B, L, C]; `train` needs a "dropout" rng when config.dropout > 0."""
    x = nn.Embed(self.config.padded(self.config.vocab_size), self.config.channels,
                 embedding_init=weight_init, dtype=self.config.compute_dtype,
                 name="embed")(tokens)
    for i, dilation in enumerate(self.config.dilations):
      x = ResidualBlock(self.config, dilation, name=f"block_{i}")(x, train)
    return x


def last_block(config: NextItNetConfig) -> int:
  """Index of the last residual block (its path is f"params/block_{i}")."""
  return len(config.dilations) - 1

