#!/usr/bin/env python3
"""PyTorch peers for the linear-attention workloads of scion-kernel-bench (same shapes, same run).

Prints CSV rows  peer,<key>,<peer name>,<ms>  with the keys linear_bench.cu prints, and
peer_mem,<key>,<peer name>,<peak MiB>  for the distillation loss. linear_peers(workloads) adds
the timing workloads to a list of (key, name, fn), the way bench/kernels/peers.py collects peers.

  linear_peers.py [--filter word,word]

Peers: the chunked Hedgehog linear attention written in PyTorch (chunk 64, intra-chunk masked
product + exclusive prefix of per-chunk states), eager and torch.compile; cuDNN softmax attention
on the same q, k, v; and the Hedgehog distillation loss computed by materialising both N×N
weight matrices (teacher softmax and student linear weights), forward + backward to W.
"""
import argparse
import math
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
import triton.testing

H, D, FEAT, TOKENS, CHUNK = 16, 64, 64, 32768, 64


def bench_ms(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def hedgehog(x, w):
    # x (B, H, N, D), w (H, D, F) -> (B, H, N, 2F)
    u = torch.einsum("bhnd,hdf->bhnf", x, w)
    return torch.cat([torch.softmax(u, -1), torch.softmax(-u, -1)], -1)


def chunked_linear(q, k, v, wq, wk, eps=1e-6):
    B, Hh, N, Dd = q.shape
    nc = N // CHUNK
    fq = hedgehog(q, wq).view(B, Hh, nc, CHUNK, -1)
    fk = hedgehog(k, wk).view(B, Hh, nc, CHUNK, -1)
    vv = v.view(B, Hh, nc, CHUNK, Dd)
    mask = torch.ones(CHUNK, CHUNK, device=q.device, dtype=torch.bool).tril()
    a = (fq @ fk.transpose(-1, -2)).masked_fill(~mask, 0)
    kv = fk.transpose(-1, -2) @ vv                       # (B, H, nc, 2F, D) per chunk
    s = kv.cumsum(2) - kv                                # state before each chunk
    zk = fk.sum(3)
    z = zk.cumsum(2) - zk                                # (B, H, nc, 2F)
    num = a @ vv + fq @ s
    den = a.sum(-1) + (fq * z.unsqueeze(3)).sum(-1) + eps
    return (num / den.unsqueeze(-1)).view(B, Hh, N, Dd)


def make_inputs(n, grad):
    B = TOKENS // n
    q, k, v, do = (torch.randn(B, H, n, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    eye = torch.eye(D, FEAT, device="cuda").expand(H, D, FEAT)
    wq = (eye + 0.1 * torch.randn(H, D, FEAT, device="cuda")).to(torch.bfloat16)
    wk = (eye + 0.1 * torch.randn(H, D, FEAT, device="cuda")).to(torch.bfloat16)
    for t in (q, k, v, wq, wk):
        t.requires_grad_(grad)
    return q, k, v, do, wq, wk


def add_fwd_fwdbwd(workloads, prefix, n, name, f, inputs):
    """Workloads <prefix>_fwd_N<n> and <prefix>_fwdbwd_N<n> (grads to q, k, v, wq, wk) of f."""
    q, k, v, do, wq, wk = inputs

    def fwd():
        with torch.no_grad():
            f(q, k, v, wq, wk)

    def fwdbwd():
        out = f(q, k, v, wq, wk)
        torch.autograd.grad(out, (q, k, v, wq, wk), do)

    workloads.append((f"{prefix}_fwd_N{n}", name, fwd))
    workloads.append((f"{prefix}_fwdbwd_N{n}", name, fwdbwd))


def linear_peers(workloads):
    # Static shapes: with the default (automatic dynamic) the second sequence length recompiles the
    # graph with a symbolic N and the later lengths reuse it; each length gets its own specialised
    # graph here (6 graphs: 3 lengths, with and without grad, within dynamo's cache limit of 8).
    compiled = torch.compile(chunked_linear, dynamic=False)
    for n in (2048, 8192, 32768):
        inputs = make_inputs(n, True)
        q, k, v, do = inputs[:4]
        for name, f in (("torch-chunked-eager", chunked_linear), ("torch-chunked-compile", compiled)):
            add_fwd_fwdbwd(workloads, "linear_hh", n, name, f, inputs)

        def cudnn_fwd(q=q, k=k, v=v):
            with torch.no_grad(), sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                F.scaled_dot_product_attention(q, k, v, is_causal=True)

        def cudnn_fwdbwd(q=q, k=k, v=v, do=do):
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            torch.autograd.grad(out, (q, k, v), do)

        workloads.append((f"linear_hh_fwd_N{n}", "sdpa-cudnn-softmax", cudnn_fwd))
        workloads.append((f"linear_hh_fwdbwd_N{n}", "sdpa-cudnn-softmax", cudnn_fwdbwd))


def distill_materialised(q, k, wq, wk, eps=1e-6):
    # Both N×N weight matrices in memory: teacher a (causal softmax) and student â.
    n = q.shape[2]
    mask = torch.ones(n, n, device=q.device, dtype=torch.bool).tril()
    s = (q @ k.transpose(-1, -2)).float() / math.sqrt(q.shape[-1])
    a = torch.softmax(s.masked_fill(~mask, float("-inf")), -1)
    fq, fk = hedgehog(q, wq).float(), hedgehog(k, wk).float()
    lin = (fq @ fk.transpose(-1, -2)).masked_fill(~mask, 0)
    ahat = lin / (lin.sum(-1, keepdim=True) + eps)
    ce = -(a * torch.log(ahat.clamp_min(1e-30))).masked_fill(~mask, 0).sum(-1)
    return ce.mean(-1).sum()


def distill_peer(n=2048):
    q, k, _, _, wq, wk = make_inputs(n, False)
    wq.requires_grad_(True)
    wk.requires_grad_(True)

    def step():
        loss = distill_materialised(q, k, wq, wk)
        torch.autograd.grad(loss, (wq, wk))

    step()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    peak_mib = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    return step, peak_mib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--filter", default="")
    args = ap.parse_args()
    words = [w for w in args.filter.split(",") if w]
    workloads = []
    linear_peers(workloads)
    try:
        step, peak = distill_peer()
        workloads.append(("distill_hh_N2048", "torch-materialised-NxN", step))
        print(f"peer_mem,distill_hh_N2048,torch-materialised-NxN,{peak:.1f}", flush=True)
    except Exception as e:  # reported, not fatal
        print(f"distill peer: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
    time_workloads(workloads, words)
    return 0


def time_workloads(workloads, words):
    """Times each (key, name, fn) whose key holds a filter word; prints peer rows (NaN on error)."""
    for key, name, fn in workloads:
        if words and not any(w in key for w in words):
            continue
        try:
            ms = bench_ms(fn)
        except Exception as e:  # reported, not fatal
            print(f"peer {name} {key}: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
            ms = math.nan
        print(f"peer,{key},{name},{ms:.5f}", flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
