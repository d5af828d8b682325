"""A tiny random BERT (written by Transformers) warm-started to a 256-token BigBird, for the search tests."""

from __future__ import annotations

import warnings

import pytest

from bigbird.warm_start import warm_start
from warm_start_sources import write_bert


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(the BERT source directory, the warm-started BigBird directory): block 16, 2 random blocks."""
    root = tmp_path_factory.mktemp("embeddings")
    source = write_bert(root / "bert", "BertModel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm_start(source, root / "bigbird", max_length=256, block_size=16, num_random_blocks=2)
    return source, root / "bigbird"
