r"""Exports a workdir's scoring function with `jax.export` (StableHLO), for serving.

  python -m launch.export --workdir=/tmp/tsc --out=/tmp/tsc_export [--top_k=10]
  python /tmp/tsc_export/load.py /tmp/tsc_export queries.npy out.npz

Writes OUT/model.jax (symbolic batch; with --top_k the top-K is inside),
OUT/items.npy, OUT/meta.json and OUT/load.py, a loader that needs only jax and
numpy (see `seqrec.export_loader`).
"""

from __future__ import annotations

from absl import flags

from launch import common
from seqrec import export, recommend

OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
TOP_K = flags.DEFINE_integer("top_k", None, "Export the top-K instead of all scores.")
PLATFORMS = flags.DEFINE_list("platforms", None,
                              "Lowering platforms, e.g. cpu,cuda (default: this one).")


def main(argv: list[str]) -> None:
  del argv
  model = recommend.load(common.WORKDIR.value)
  exported = export.export(model, OUT.value, TOP_K.value,
                           tuple(PLATFORMS.value) if PLATFORMS.value else None)
  common.report(f"exported {model.config.family} for {', '.join(exported.platforms)} "
                f"(input [b, {model.input_length}]) to {OUT.value}")


if __name__ == "__main__":
  common.run(main)
