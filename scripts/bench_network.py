"""Time PerspNet: milliseconds per forward pass (eval mode, no grad) at batch 1 and 16, and per training
step (forward + backward, train mode) at batch 16, for the lite and paper presets on CPU (and CUDA when
available); prints parameter counts.

    .venv/bin/python scripts/bench_network.py [--repeats 5] [--threads N] [--presets lite paper] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import time

import torch

from perspnet.face_model import load_face_model
from perspnet.network import config as net_config
from perspnet.network.model import PerspNet


def time_ms(fn, device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - t0) * 1e3)  # [ms]
    return sorted(times)[len(times) // 2]


def train_step(net: PerspNet, image: torch.Tensor, choose: torch.Tensor) -> None:
    """Forward and backward of a stand-in loss touching every output head."""
    net.zero_grad(set_to_none=True)
    out = net(image, choose)
    (out["uv_map"].abs().mean() + out["points_corr"].abs().mean() + out["seg_logits"].abs().mean()).backward()


def param_counts(net: PerspNet) -> dict[str, int]:
    parts = {"encoder": net.encoder, "decoders": [net.head, net.image_decoder, net.seg_head, net.uv_decoder],
             "corr_head": net.corr_head}
    counts = {name: sum(p.numel() for m in (mods if isinstance(mods, list) else [mods]) for p in m.parameters())
              for name, mods in parts.items()}
    counts["total"] = sum(p.numel() for p in net.parameters())
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["lite", "paper"], choices=["lite", "paper"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="only this one (default: the CPU and CUDA)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    uvs = load_face_model().uvs
    names = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devices = [torch.device(name) for name in names]
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    for preset in args.presets:
        cfg = getattr(net_config, preset)()
        net = PerspNet(cfg, uvs)
        counts = ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in param_counts(net).items())
        print(f"\n{preset}: S={cfg.input_size} U={cfg.uv_size} m={cfg.n_points} width_mult={cfg.width_mult}")
        print(f"  parameters: {counts}")
        for device in devices:
            net = net.to(device)
            s, m = cfg.input_size, cfg.n_points
            for batch in (1, 16):  # the batch-16 image and choose are reused for the training step
                image = torch.randn(batch, 3, s, s, device=device)
                choose = torch.randint(0, s * s, (batch, m), device=device)
                net.eval()
                with torch.no_grad():
                    fwd = time_ms(lambda: net(image, choose), device, args.warmup, args.repeats)
                per_image = fwd / batch
                print(f"  {device.type:4s} batch {batch:2d}: forward {fwd:8.1f} ms  ({per_image:6.1f} ms / image)")

            net.train()
            step = time_ms(lambda: train_step(net, image, choose), device, args.warmup, args.repeats)
            print(f"  {device.type:4s} batch 16: forward + backward {step:8.1f} ms")


if __name__ == "__main__":
    main()
