import os

import torch

if not torch.cuda.is_available():  # Triton kernels run on CPU tensors in its interpreter; set before triton imports
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
from pegasus_oracle import save_tiny


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def seq2seq_dir(tmp_path_factory):
    """A tiny BigBird-Pegasus generation checkpoint (with biases) saved by Transformers, for the generate tests."""
    directory = tmp_path_factory.mktemp("seq2seq")
    save_tiny("BigBirdPegasusForConditionalGeneration", directory, use_bias=True)
    return directory


@pytest.fixture(scope="session")
def causal_dir(tmp_path_factory):
    """A tiny BigBird-Pegasus causal LM saved by Transformers, for the decoder-only generate tests."""
    directory = tmp_path_factory.mktemp("causal")
    save_tiny("BigBirdPegasusForCausalLM", directory)
    return directory
