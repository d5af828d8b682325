"""The process group of `bigbird train` and the engines it hands the model to.

Under `torchrun` (WORLD_SIZE > 1 in the environment) every process joins the default process group (NCCL on
GPUs, gloo on CPUs); the model is then wrapped in PyTorch's DistributedDataParallel, or, with `fsdp`, sharded
with FSDP2 (`fully_shard` on each layer, then on the whole model). A single process uses the model as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclasses.dataclass
class Runtime:
    """Where this process runs: its rank among `world` processes and its device."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    fsdp: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str | None, fsdp: bool) -> Runtime:
    """Join the process group when started by torchrun; pick the device (default: this process's GPU if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Runtime(rank, world, local_rank, chosen, fsdp)


def teardown(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, runtime: Runtime) -> nn.Module:
    """The model as the training step calls it: FSDP2-sharded, DDP-wrapped, or itself."""
    model.to(runtime.device)
    if runtime.fsdp:
        from torch.distributed.fsdp import fully_shard

        for module in list(model.modules()):
            if isinstance(module, nn.ModuleList):
                for layer in module:
                    fully_shard(layer)
        return fully_shard(model)
    if runtime.distributed:
        from torch.nn.parallel import DistributedDataParallel

        # some heads leave weights out of the loss (e.g. the pooler under a token-0 classifier)
        return DistributedDataParallel(model, device_ids=[runtime.device.index] if runtime.device.type == "cuda"
                                       else None, find_unused_parameters=True)
    return model


def no_gradient_sync(model: nn.Module, runtime: Runtime):
    """A context in which backward passes only accumulate gradients locally (gradient accumulation)."""
    if runtime.fsdp:
        @contextlib.contextmanager
        def paused():
            model.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                model.set_requires_gradient_sync(True)
        return paused()
    if runtime.distributed:
        return model.no_sync()
    return contextlib.nullcontext()


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight, whole and on the CPU, under the unwrapped model's names (a collective under FSDP)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state, whole and on the CPU, keyed by parameter names (a collective under FSDP)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a state written by `full_optimizer_state` (each process reads the whole one and keeps its part)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    # weights outside every loss so far (e.g. an unused pooler) have no state yet
    set_optimizer_state_dict(model, optimizer, optim_state_dict=state,
                             options=StateDictOptions(full_state_dict=True, strict=False))


def gather(value: Any, runtime: Runtime) -> list:
    """The `value` of every process, in rank order."""
    if not runtime.distributed:
        return [value]
    out = [None] * runtime.world
    dist.all_gather_object(out, value)
    return out


def total(values: list[float], runtime: Runtime) -> list[float]:
    """Element-wise sums of `values` over the processes."""
    tensor = torch.tensor(values, dtype=torch.float64, device=runtime.device)
    if runtime.distributed:
        dist.all_reduce(tensor)
    return tensor.tolist()


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        dist.barrier()
