"""Test-wide JAX set-up: 8 fake CPU devices and a persistent compilation cache.

Must run before JAX initialises its backends, which is why it lives here.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update(
    "jax_compilation_cache_dir",
    os.path.join(os.path.dirname(__file__), os.pardir, ".jax_cache"))
