"""CmnRec model-size flags that `launch.train_mnr` and `launch.bench_chunk` share.

The defaults are `MnrConfig`'s: the paper's sizes.
"""

from absl import flags

from chunkmnr_jax.models import MnrConfig

EMBED_DIM = flags.DEFINE_integer("embed_dim", MnrConfig.embed_dim, "E: item embedding width.")
HIDDEN = flags.DEFINE_integer("hidden", MnrConfig.hidden, "h: controller width.")
SLOT_WIDTH = flags.DEFINE_integer("slot_width", MnrConfig.slot_width, "W: memory slot width.")
READ_HEADS = flags.DEFINE_integer("read_heads", MnrConfig.read_heads, "R: read heads.")
SCAN_UNROLL = flags.DEFINE_integer("scan_unroll", MnrConfig.scan_unroll,
                                   "Unroll factor of every lax.scan.")


def sizes() -> dict[str, int]:
  """The flags' values as `MnrConfig` keyword arguments."""
  return dict(embed_dim=EMBED_DIM.value, hidden=HIDDEN.value, slot_width=SLOT_WIDTH.value,
              read_heads=READ_HEADS.value, scan_unroll=SCAN_UNROLL.value)
