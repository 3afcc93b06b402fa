"""Test-wide JAX set-up: 8 fake CPU devices, cheap compiles (`tests.paths.xla_flags`)
and a persistent compilation cache in .jax_cache that keeps every program.

Must run before JAX initialises its backends, which is why it lives here.
Subprocesses (the binaries under test) inherit all of it through the
environment. Tests build the same tiny programs again and again (a resumed
run, the same config in several tests), so even a cold run hits the cache:
JAX's default keeps only compiles over 1 s, which most of these are not.
"""

import os

from tests.paths import xla_flags  # imports no JAX

os.environ.setdefault("XLA_FLAGS", xla_flags(8))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.normpath(
    os.path.join(os.path.dirname(__file__), os.pardir, ".jax_cache")))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# Binaries under test read every dataset afresh (`seqrec.data_cache` has its own tests).
os.environ.setdefault("SEQREC_DATA_CACHE", "")
