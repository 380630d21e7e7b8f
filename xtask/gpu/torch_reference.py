#!/usr/bin/env python3
"""Reference figures from PyTorch for kiln's burn-in, measured the same way kiln measures.

bf16 GEMM n^3 for a given number of seconds (random data, median of per-product CUDA-event times), device-to-device
copy (bytes read + written, median of samples of 10 copies of 2 GiB), and pinned host
copies (page-locked, not write-combined, median of samples of 4 copies of 256 MiB).
Prints one JSON object. Used by docs/benchmarks.md.

`torch_reference.py nccl [SIZES_MIB]` instead measures NCCL all-reduce and all-gather through
torch.distributed, one process per GPU present, bus bandwidth as nccl-tests (and kiln nccl-rank)
compute it: algbw = bytes / time, busbw = algbw x 2(n-1)/n (all-reduce) or (n-1)/n (all-gather),
bytes being the all-reduce buffer or the whole all-gather output.
"""
import json
import statistics
import sys
import time

import torch


def timed(fn, repeat):
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeat):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000.0


def gemm(n=8192, seconds=30.0):
    """Back-to-back products for `seconds`, each timed alone with events; the median,
    as kiln's gemm test reports it (sustained, so at whatever clock the power cap allows)."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(10):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    rates = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(50)]
        for start, end in events:
            start.record()
            torch.matmul(a, b)
            end.record()
        torch.cuda.synchronize()
        rates += [2 * n**3 / (s.elapsed_time(e) / 1000.0) / 1e12 for s, e in events]
    return statistics.median(rates), len(rates)


def d2d(nbytes=2 << 30, samples=9, copies=10):
    src = torch.randint(0, 255, (nbytes,), device="cuda", dtype=torch.uint8)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    rates = [2 * nbytes * copies / timed(lambda: dst.copy_(src), copies) / 1e12 for _ in range(samples)]
    assert torch.equal(src, dst), "device copy corrupted data"
    return statistics.median(rates)


def pinned(nbytes=256 << 20, samples=7, copies=4):
    host = torch.randint(0, 255, (nbytes,), dtype=torch.uint8).pin_memory()
    back = torch.empty(nbytes, dtype=torch.uint8).pin_memory()
    dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    out = {}
    for name, fn in (
        ("h2d", lambda: dev.copy_(host, non_blocking=True)),
        ("d2h", lambda: back.copy_(dev, non_blocking=True)),
    ):
        for _ in range(2):
            fn()
        rates = [nbytes * copies / timed(fn, copies) / 1e9 for _ in range(samples)]
        out[name] = statistics.median(rates)
    torch.cuda.synchronize()
    assert torch.equal(host, back), "pinned copy corrupted data"
    return out


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    link = pinned()
    tflops, products = gemm(n, seconds)
    result = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gemm_bf16_tflops": tflops,
        "gemm_products": products,
        "d2d_copy_tb_s": d2d(),
        "pinned_h2d_gb_s": link["h2d"],
        "pinned_d2h_gb_s": link["d2h"],
    }
    print(json.dumps(result, indent=2))


def nccl_rank(rank, world, sizes_mib, iterations, warmup, port, queue):
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    out = []
    for op in ("all_reduce", "all_gather"):
        for mib in sizes_mib:
            words = (mib << 20) // 4
            if op == "all_reduce":
                buf = torch.full((words,), float(rank + 1), device="cuda", dtype=torch.float32)

                def once():
                    dist.all_reduce(buf)

            else:
                chunk = words // world
                send = torch.full((chunk,), float(rank + 1), device="cuda", dtype=torch.float32)
                recv = torch.empty((chunk * world,), device="cuda", dtype=torch.float32)

                def once():
                    dist.all_gather_into_tensor(recv, send)

            for _ in range(warmup):
                once()
            torch.cuda.synchronize()
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(iterations):
                once()
            torch.cuda.synchronize()
            seconds = (time.perf_counter() - t0) / iterations
            size = (mib << 20) if op == "all_reduce" else chunk * world * 4
            factor = 2 * (world - 1) / world if op == "all_reduce" else (world - 1) / world
            algbw = size / seconds / 1e9
            out.append({"op": op, "bytes": size, "time_us": seconds * 1e6, "algbw_gbps": algbw,
                        "busbw_gbps": algbw * factor})
    if rank == 0:
        queue.put(out)
    dist.destroy_process_group()


def nccl_main(sizes_mib, iterations=20, warmup=5):
    import torch.multiprocessing as mp

    world = torch.cuda.device_count()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + (int(time.time()) % 1000)
    procs = [ctx.Process(target=nccl_rank, args=(r, world, sizes_mib, iterations, warmup, port, queue))
             for r in range(world)]
    for p in procs:
        p.start()
    results = queue.get(timeout=600)
    for p in procs:
        p.join(timeout=60)
    print(json.dumps({
        "device": torch.cuda.get_device_name(0),
        "gpus": world,
        "torch": torch.__version__,
        "nccl": ".".join(str(v) for v in torch.cuda.nccl.version()),
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "nccl":
        sizes = [int(s) for s in sys.argv[2].split(",")] if len(sys.argv) > 2 else [64, 1024, 4096]
        nccl_main(sizes)
    else:
        main()
