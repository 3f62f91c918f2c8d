"""`python fsdp_cpu_launch.py ARGS` = `tuneforge ARGS`, with Accelerate's FSDP allowed on CPU (for tests only).

Accelerate 1.16 turns FSDP on only for accelerator process groups (its `AcceleratorState` sets
`DistributedType.FSDP` for MULTI_GPU/NPU/XPU/... but not MULTI_CPU), so `ACCELERATE_USE_FSDP=true` under a CPU
torchrun silently gives DDP. This launcher changes that one decision and nothing else: Accelerate then wraps the model
with FSDP (version from FSDP_VERSION; FSDP2's `fully_shard` runs on CPU with gloo, FSDP1 refuses a CPU device_id)
and TuneForge's session, loop, checkpoints and final/ run their FSDP paths, as they would on GPUs.
"""
import os
import sys

import accelerate.state as state
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

_init = state.AcceleratorState.__init__


def _init_with_cpu_fsdp(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        self.fsdp_plugin = kwargs.get("fsdp_plugin") or FullyShardedDataParallelPlugin()


state.AcceleratorState.__init__ = _init_with_cpu_fsdp

if __name__ == "__main__":
    from tuneforge.cli import main

    sys.argv = ["tuneforge", *sys.argv[1:]]
    main()
