"""Speed of the stamp classifier at 64, 128 and 224 px input, plain ResNet34 against the custom stem.

For each architecture (``resnet34``: torchvision's 7x7 stride-2 stem and max-pool;
``resnet34-stem``: `binarycat.model.networks.small_stamp_stem`) and input size it times, on
random tensors in one run on one machine:

- training: stamps/s through forward, backward and a (fused) Adam step, batch ``--batch``;
- inference: stamps/s of the forward pass in ``torch.inference_mode`` (bf16 autocast and
  channels-last on CUDA), batch ``--infer-batch``;

and prints each as a ratio to the plain ResNet34 at 64 px measured in the same run (the
reference). Accuracy at each size comes from training runs (see the closing notes of issue 4
and ``binarycat train --input-size``); this script measures only the cost.

Run:  python benchmarks/bench_stamp_geometry.py [--device cpu|cuda] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from binarycat.model.device import adam, autocast, pick_device
from binarycat.model.networks import build


def _model(arch: str, size: int, device: torch.device) -> torch.nn.Module:
    kwargs = {"input_size": size} if arch == "resnet34-stem" else {}
    model = build(arch, **kwargs).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_rate(arch: str, size: int, batch: int, repeats: int, device: torch.device) -> float:
    model = _model(arch, size, device).train()
    opt = adam(model.parameters(), 3e-4)
    x = torch.randn(batch, 1, size, size, device=device)
    y = torch.randint(0, 2, (batch,), device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    best = float("inf")
    for i in range(repeats + 1):
        _sync(device)
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast(device):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        _sync(device)
        if i:  # the first step warms up the kernels
            best = min(best, time.perf_counter() - t)
    return batch / best


def infer_rate(arch: str, size: int, batch: int, repeats: int, device: torch.device) -> float:
    model = _model(arch, size, device).eval()
    x = torch.randn(batch, 1, size, size, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.inference_mode():
        for i in range(repeats + 1):
            _sync(device)
            t = time.perf_counter()
            with autocast(device):
                model(x)
            _sync(device)
            if i:
                best = min(best, time.perf_counter() - t)
    return batch / best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--sizes", default="64,128,224")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--infer-batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    device = pick_device(args.device)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"device {device}, torch threads {torch.get_num_threads()}, train batch {args.batch}, "
          f"inference batch {args.infer_batch}, best of {args.repeats}")
    rows = []
    for arch in ("resnet34", "resnet34-stem"):
        for size in sizes:
            rows.append((arch, size, train_rate(arch, size, args.batch, args.repeats, device),
                         infer_rate(arch, size, args.infer_batch, args.repeats, device)))
    ref_train, ref_infer = next((r[2], r[3]) for r in rows if r[0] == "resnet34" and r[1] == sizes[0])
    print(f"{'architecture':<15} {'input':>5} {'train st/s':>11} {'vs ref':>7} {'infer st/s':>11} {'vs ref':>7}")
    for arch, size, tr, inf in rows:
        print(f"{arch:<15} {size:>5} {tr:>11.1f} {tr / ref_train:>6.2f}x {inf:>11.1f} {inf / ref_infer:>6.2f}x")
    print(f"reference: resnet34 at {sizes[0]} px")


if __name__ == "__main__":
    main()
