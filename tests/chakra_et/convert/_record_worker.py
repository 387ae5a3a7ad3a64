"""Records real gloo training steps with ``chakra_et.capture`` for the converter tests.

Run as ``python -m tests.chakra_et.convert._record_worker MODE WORLD OUT``; every rank writes
``host.R.json``/``device.R.json`` and ``expected.R.json``: the communication it issued.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

D = 64


def _worker(rank: int, mode: str, world: int, out: str) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn

    from trainsim import chakra_et

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=world)
    even = list(range(0, world, 2))
    sub = dist.new_group(even)
    expected: list[dict[str, Any]] = []

    def log(kind: str, size_bytes: int, ranks: list[int], **extra: Any) -> None:
        expected.append({"type": kind, "bytes": size_bytes, "ranks": ranks, **extra})

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.ReLU(), nn.Linear(4 * D, D))
    if mode == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        for layer in mlp:
            if isinstance(layer, nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(mlp, mesh=mesh)
        model: nn.Module = mlp
    else:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(mlp)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    everyone = list(range(world))
    with chakra_et.capture(out, warmup_steps=1, convert=False) as cap:
        for step in range(2):
            record = step == 1
            expected.clear()
            loss = model(torch.randn(8, D)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if mode == "explicit":
                x = torch.ones(256)
                dist.all_reduce(x)
                log("ALL_REDUCE", 1024, everyone)
                dist.all_gather_into_tensor(torch.empty(256 * world), x)
                log("ALL_GATHER", 1024, everyone)
                dist.all_gather([torch.empty(256) for _ in range(world)], x)
                log("ALL_GATHER", 1024, everyone)
                dist.reduce_scatter_tensor(torch.empty(256 // world), x)
                log("REDUCE_SCATTER", 1024, everyone)
                dist.all_to_all_single(torch.empty(256), x)
                log("ALL_TO_ALL", 1024, everyone)
                dist.broadcast(x, src=0)
                log("BROADCAST", 1024, everyone)
                dist.barrier()
                log("BARRIER", 0, everyone)
                buf = torch.ones(128)
                nxt, prv = (rank + 1) % world, (rank - 1) % world
                if rank % 2 == 0:
                    dist.send(buf, nxt, tag=7)
                    dist.recv(buf, prv, tag=7)
                else:
                    dist.recv(buf, prv, tag=7)
                    dist.send(buf, nxt, tag=7)
                log("SEND", 512, everyone, src=rank, dst=nxt, tag=7)
                log("RECV", 512, everyone, src=prv, dst=rank, tag=7)
                if rank in even:
                    y = torch.ones(32)
                    dist.all_reduce(y, group=sub)
                    log("ALL_REDUCE", 128, even)
            cap.step()
            del record
    Path(out, f"expected.{rank}.json").write_text(
        json.dumps(
            {"expected": expected, "params_bytes": sum(p.numel() * 4 for p in mlp.parameters())}
        )
    )
    dist.barrier()
    dist.destroy_process_group()


def main(argv: list[str]) -> None:
    """Spawn ``WORLD`` ranks running ``MODE`` (``ddp``, ``explicit`` or ``fsdp``)."""
    import torch.multiprocessing as mp

    mode, world, out = argv[0], int(argv[1]), argv[2]
    mp.spawn(_worker, args=(mode, world, out), nprocs=world, join=True)  # type: ignore[attr-defined,no-untyped-call]


if __name__ == "__main__":
    main(sys.argv[1:])
