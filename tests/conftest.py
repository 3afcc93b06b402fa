"""Test-wide JAX set-up: 8 fake CPU devices, cheap compiles (`tests.paths.xla_flags`)
and a persistent compilation cache.

Must run before JAX initialises its backends, which is why it lives here.
Subprocesses inherit the flags.
"""

import os

from tests.paths import xla_flags  # imports no JAX

os.environ.setdefault("XLA_FLAGS", xla_flags(8))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update(
    "jax_compilation_cache_dir",
    os.path.join(os.path.dirname(__file__), os.pardir, ".jax_cache"))
