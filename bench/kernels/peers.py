#!/usr/bin/env python3
"""PyTorch peers for scion-kernel-bench's workloads, timed in the same run on the same shapes.

Prints CSV rows  peer,<key>,<peer name>,<ms>  (keys as scion-kernel-bench prints them) and
ceiling,<name>,<what>,<value>  rows for the bf16 GEMM and device-copy ceilings. Another op family
adds its peers by appending (key, name, fn) to WORKLOADS through a function like softmax_peers().

usage: peers.py [--filter word,word]   (keeps keys that contain any word)
"""
import argparse
import math
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
import triton.testing

H, D, TOKENS = 16, 64, 32768
LAYOUT_BLOCK = 128


def bench_ms(fn):
    # Median of event-timed calls after warm-up (milliseconds).
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def rand(*shape, grad=False):
    return torch.randn(*shape, device="cuda", dtype=torch.bfloat16).requires_grad_(grad)


def fwd_and_fwdbwd(f, B, N):
    """(fwd fn, fwd+bwd fn) for an attention function f(q, k, v)."""
    q, k, v, do = (rand(B, H, N, D, grad=True) for _ in range(4))

    def fwd():
        with torch.no_grad():
            f(q, k, v)

    def fwdbwd():
        out = f(q, k, v)
        torch.autograd.grad(out, (q, k, v), do)

    return fwd, fwdbwd


def sdpa(backend):
    def f(q, k, v):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return f


# The same block layouts as bench/kernels/softmax_bench.cu.
def random_block(r, c):
    h = ((r * 73856093) ^ (c * 19349663) ^ 0x9E3779B9) & 0xFFFFFFFF
    h = (h * 2654435761) & 0xFFFFFFFF
    return r == c or (h >> 24) < 64


def hmar_scale_of_blocks(num_scales, block, n):
    starts = [0]
    for s in range(1, num_scales + 1):
        starts.append(starts[-1] + s * s)
    ranges = []
    for b in range((n + block - 1) // block):
        first, last = b * block, min(n, (b + 1) * block) - 1
        lo = max(s for s in range(num_scales) if starts[s] <= first)
        hi = max(s for s in range(num_scales) if starts[s] <= last)
        ranges.append((lo, hi))
    return ranges


def layout_bitmap(kind):
    if kind == "hmar_diag":
        n = sum(s * s for s in range(1, 17))
        rng = hmar_scale_of_blocks(16, LAYOUT_BLOCK, n)
        nb = len(rng)
        bm = [[rng[c][0] <= rng[r][1] and rng[r][0] <= rng[c][1] for c in range(nb)] for r in range(nb)]
        return n, 22, torch.tensor(bm, device="cuda")
    n = 8192
    nb = n // LAYOUT_BLOCK
    bm = [[random_block(r, c) for c in range(nb)] for r in range(nb)]
    return n, TOKENS // n, torch.tensor(bm, device="cuda")


def softmax_peers(workloads):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    import torch._dynamo
    torch._dynamo.config.cache_size_limit = 64
    flex = torch.compile(flex_attention)

    for n in (2048, 8192, 32768):
        B = TOKENS // n
        for name, backend in (("sdpa-flash", SDPBackend.FLASH_ATTENTION), ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION)):
            fwd, fwdbwd = fwd_and_fwdbwd(sdpa(backend), B, n)
            workloads.append((f"causal_fwd_N{n}", name, fwd))
            workloads.append((f"causal_fwdbwd_N{n}", name, fwdbwd))
        # FlexAttention on the causal mask too: the strongest peer is whichever of the three is fastest.
        bm = create_block_mask(lambda b, h, i, j: i >= j, None, None, n, n)
        fwd, fwdbwd = fwd_and_fwdbwd(lambda q, k, v, bm=bm: flex(q, k, v, block_mask=bm), B, n)
        workloads.append((f"causal_fwd_N{n}", "flex-compiled", fwd))
        workloads.append((f"causal_fwdbwd_N{n}", "flex-compiled", fwdbwd))
        W = 256
        bm = create_block_mask(lambda b, h, i, j: (i >= j) & (i - j < W), None, None, n, n)
        fwd, fwdbwd = fwd_and_fwdbwd(lambda q, k, v, bm=bm: flex(q, k, v, block_mask=bm), B, n)
        workloads.append((f"swa256_fwd_N{n}", "flex-compiled", fwd))
        workloads.append((f"swa256_fwdbwd_N{n}", "flex-compiled", fwdbwd))

    for kind in ("hmar_diag", "rand25"):
        n, B, bitmap = layout_bitmap(kind)
        nnz = int(bitmap.sum().item())
        bm = create_block_mask(lambda b, h, i, j, t=bitmap: t[i // LAYOUT_BLOCK, j // LAYOUT_BLOCK], None, None, n, n,
                               BLOCK_SIZE=LAYOUT_BLOCK)
        fwd, fwdbwd = fwd_and_fwdbwd(lambda q, k, v, bm=bm: flex(q, k, v, block_mask=bm), B, n)
        workloads.append((f"{kind}_nnz{nnz}_fwd_N{n}", "flex-compiled", fwd))
        workloads.append((f"{kind}_nnz{nnz}_fwdbwd_N{n}", "flex-compiled", fwdbwd))


def lowra_peers(workloads):
    """bf16 y = x Wᵀ through cuBLAS (torch.nn.functional.linear), the peer of the LowRA rows."""
    n = k = 8192
    w = rand(n, k)  # 128 MiB: larger than L2, so every call streams W from HBM
    for m in (1, 2, 4, 8, 16, 1024):
        x = rand(m, k)

        def fn(x=x):
            with torch.no_grad():
                F.linear(x, w)
        workloads.append((f"lowra_linear_M{m}_N{n}_K{k}", "torch-bf16-cublas", fn))


# Families of workloads: (key prefixes, function adding them). A family whose keys no filter word
# can match is not built (building the flex-attention peers compiles kernels).
FAMILIES = [
    (("causal", "swa256", "hmar_diag", "rand25"), lambda wl: softmax_peers(wl)),
    (("lowra_",), lambda wl: lowra_peers(wl)),
]


def ceilings():
    a, b = rand(8192, 8192), rand(8192, 8192)
    ms = bench_ms(lambda: torch.matmul(a, b))
    print(f"ceiling,gemm_bf16,tflops,{2 * 8192 ** 3 / ms * 1e-9:.1f}", flush=True)
    x = torch.empty(1 << 29, device="cuda", dtype=torch.int16)  # 1 GiB
    y = torch.empty_like(x)
    ms = bench_ms(lambda: y.copy_(x))
    print(f"ceiling,copy,tbs,{2 * x.numel() * 2 / ms * 1e-9:.3f}", flush=True)
    del a, b, x, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--filter", default="")
    args = ap.parse_args()
    words = [w for w in args.filter.split(",") if w]
    ceilings()
    workloads = []
    for prefixes, add in FAMILIES:
        if not words or any(w in p or p in w for w in words for p in prefixes):
            add(workloads)
    failed = 0
    for key, name, fn in workloads:
        if words and not any(w in key for w in words):
            continue
        try:
            ms = bench_ms(fn)
        except Exception as e:  # a peer that cannot run this shape is reported, not fatal
            print(f"peer {name} {key}: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
            ms = math.nan
            failed += 1
        print(f"peer,{key},{name},{ms:.5f}", flush=True)
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
