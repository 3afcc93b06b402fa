"""Paths the tests share: the repository root and the shared MovieLens-100k files."""

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# RecBole's ml-100k files live beside the repository, in ../shared/data/ml-100k;
# ML100K_DIR points elsewhere (e.g. for a clone in another directory).
ML100K = os.environ.get("ML100K_DIR") or os.path.normpath(
    os.path.join(REPO, "..", "shared", "data", "ml-100k"))
needs_ml100k = pytest.mark.skipif(
    not os.path.isdir(ML100K), reason=f"MovieLens-100k not found at {ML100K} (set ML100K_DIR)")
