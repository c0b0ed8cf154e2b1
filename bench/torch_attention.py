#!/usr/bin/python3
"""PyTorch CPU's exact causal softmax attention, forward + backward, H=12,
d=64, B=1, for reference beside ./train bench-attn. Prints one line per T
(or that it ran out of memory). Run with the tuned environment of
bench/train_step.sh.   bench/torch_attention.py T [T ...]"""
import math
import sys
import time

import torch

torch.set_num_threads(2)
for T in (int(a) for a in sys.argv[1:]):
    try:
        q, k, v = (torch.randn(1, 12, T, 64, requires_grad=True) for _ in range(3))
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        g = torch.randn(1, 12, T, 64)
        best = 1e9
        for rep in range(3):
            t0 = time.perf_counter()
            att = (q @ k.transpose(-2, -1)) / math.sqrt(64)
            y = att.masked_fill(~mask, float("-inf")).softmax(-1) @ v
            y.backward(g)
            best = min(best, time.perf_counter() - t0)
            q.grad = k.grad = v.grad = None
        print(f"pytorch exact attention T={T} fwd_bwd_ms={best * 1e3:.0f}", flush=True)
        del q, k, v, mask, g, att, y
    except RuntimeError as e:  # out of memory
        print(f"pytorch exact attention T={T}: failed ({str(e).splitlines()[0][:80]})", flush=True)
        break
