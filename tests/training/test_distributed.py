"""`bigbird train` under torchrun: two gloo processes on the CPU (DistributedDataParallel, and FSDP2 with
--fsdp) end a step with the same weights as one process on the same global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from bigbird.cli.main import main
from training_fixtures import long_range_records, tiny_bigbird, write_jsonl

pytestmark = pytest.mark.filterwarnings("ignore:.*newly initialised:UserWarning")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    model = tiny_bigbird(root / "model", positions=256, block_size=16)
    # documents of different lengths: each process pads to the whole global batch's longest row
    records = [dict(r, text=" ".join(r["text"].split()[: 150 + 13 * i]))
               for i, r in enumerate(long_range_records(8, 0, length=254, plant_from=10))]
    train_file = write_jsonl(root / "train.jsonl", records)
    args = ["train", "classify", "--model", str(model), "--train", str(train_file), "--max-steps", "2",
            "--lr", "0.01", "--warmup-ratio", "0", "--labels", "alpha,beta,gamma,delta"]
    assert main([*args, "--out", str(root / "single"), "--batch-size", "4"]) == 0
    return root, args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(root, args: list[str], out: str, *extra: str) -> None:
    script = root / "bigbird_cli.py"
    script.write_text("from bigbird.cli.main import main\nraise SystemExit(main())\n", encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), str(script), *args, "--out", str(root / out), "--batch-size", "2",
               *extra]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _assert_same_weights(root, out: str) -> None:
    """Equal up to float noise (which Adam's normalisation amplifies on near-zero gradients), far below the
    0.01-sized steps that a different batch split would change."""
    single, distributed = load_file(root / "single" / "model.safetensors"), load_file(root / out / "model.safetensors")
    start = load_file(root / "model" / "model.safetensors")
    assert distributed.keys() == single.keys()
    moved = 0
    for key, tensor in single.items():
        torch.testing.assert_close(distributed[key], tensor, atol=1e-4, rtol=0, msg=key)
        base = start.get(key.removeprefix("bert."))
        moved += base is not None and (base - tensor).abs().max().item() > 5e-3
    assert moved > 10  # the steps changed the weights by much more than the tolerance


def test_ddp_two_processes_match_one(setup):
    root, args = setup
    _torchrun(root, args, "ddp")
    _assert_same_weights(root, "ddp")


def test_fsdp2_two_processes_match_one(setup):
    root, args = setup
    _torchrun(root, args, "fsdp", "--fsdp")
    _assert_same_weights(root, "fsdp")
