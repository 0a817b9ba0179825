"""Benchmark the data engine: time to make one 800x800 sample (image, mask, correspondence, 192x192 UV map).

Usage: python scripts/bench_synth.py [--n 50] [--size 800]
Prints the median and 90th percentile per stage, in milliseconds, on this machine.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from perspnet.synth.bank import default_bank
from perspnet.synth.sampler import SampleGenerator, SynthConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--size", type=int, default=800)
    args = ap.parse_args()
    cfg = replace(SynthConfig(), image_sizes=((args.size, args.size),), uv_size=192)
    gen = SampleGenerator(default_bank(), "train", cfg)
    rng = np.random.default_rng(0)
    for _ in range(3):  # compile the numba kernels, warm the caches
        gen.sample(rng)
    times = []
    for _ in range(args.n):
        t0 = time.perf_counter()
        s = gen.sample(rng)
        times.append((time.perf_counter() - t0) * 1000)
    times = np.asarray(times)
    print(f"sample {args.size}x{args.size} (image, mask, correspondence, UV map {cfg.uv_size}): "
          f"median {np.median(times):.1f} ms, p90 {np.percentile(times, 90):.1f} ms over {args.n} samples; "
          f"face pixels in the last sample: {int(s.mask.sum())}")


if __name__ == "__main__":
    main()
