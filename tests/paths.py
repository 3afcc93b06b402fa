"""What the tests share: the repository root, the shared MovieLens-100k files and
the XLA flags of the test processes."""

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# RecBole's ml-100k files live beside the repository, in ../shared/data/ml-100k;
# ML100K_DIR points elsewhere (e.g. for a clone in another directory).
ML100K = os.environ.get("ML100K_DIR") or os.path.normpath(
    os.path.join(REPO, "..", "shared", "data", "ml-100k"))
needs_ml100k = pytest.mark.skipif(
    not os.path.isdir(ML100K), reason=f"MovieLens-100k not found at {ML100K} (set ML100K_DIR)")
# Amazon Beauty as released with BERT4Rec, likewise (BEAUTY_FILE elsewhere).
BEAUTY = os.environ.get("BEAUTY_FILE") or os.path.normpath(
    os.path.join(REPO, "..", "shared", "data", "amazon-beauty", "beauty.txt"))
needs_beauty = pytest.mark.skipif(
    not os.path.isfile(BEAUTY), reason=f"Amazon Beauty not found at {BEAUTY} (set BEAUTY_FILE)")


# Tests compile hundreds of tiny programs whose run time is negligible, so XLA's
# slow-to-compile CPU optimisations are off: a cold-cache run of
# tests/chunkmnr_jax/test_chunk_models.py took 115 s instead of 194 s.
CHEAP_COMPILES = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
# The fake devices of one process meet in in-process collectives. With two pytest
# workers and their subprocesses on two cores, a device that is merely late gets 120 s
# rather than XLA's 40 s. A rendezvous that never completes still fails, within minutes
# rather than at the subprocesses' 600 s limit: one did when evaluation let the host run
# far ahead of the devices (tests/seqrec/many_batches.py).
PATIENT_COLLECTIVES = "--xla_cpu_collective_call_terminate_timeout_seconds=120"


def xla_flags(devices: int) -> str:
  """XLA_FLAGS of a test process (or subprocess) with `devices` fake CPU devices."""
  return (f"--xla_force_host_platform_device_count={devices} {CHEAP_COMPILES} "
          f"{PATIENT_COLLECTIVES}")
