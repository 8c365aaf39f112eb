#!/usr/bin/env python3
"""PyTorch peers for the hybrid-attention workloads of scion-kernel-bench (same shapes, same run).

Prints CSV rows  peer,<key>,<peer name>,<ms>  with the keys hybrid_bench.cu prints.

  hybrid_peers.py [--filter word,word]

Peer: the same composition written in PyTorch, chunked (64 tokens) so nothing is N×N: the window
part as a band of 64 + w keys per query chunk with an explicit mask, the linear part as the
chunked Hedgehog linear attention with the keys shifted w tokens later (w a multiple of 64), and
the shared normaliser with the per-row max clamped at 0 (as Scion's CPU reference); eager and
torch.compile.
"""
import argparse
import math
import sys

import torch
import torch.nn.functional as F

# Same shapes, inputs and Hedgehog map as the linear workloads (this folder is on sys.path when
# the script runs).
from linear_peers import CHUNK, TOKENS, add_fwd_fwdbwd, hedgehog, make_inputs, time_workloads

WINDOW = 256


def hybrid(q, k, v, wq, wk, w=WINDOW, eps=1e-6):
    B, Hh, N, Dd = q.shape
    nc, lag = N // CHUNK, w // CHUNK
    scale = 1.0 / math.sqrt(Dd)
    # Band: query chunk c sees key chunks c - lag .. c (64 + w keys), masked to i - w < j <= i.
    kp = F.pad(k, (0, 0, w, 0)).view(B, Hh, nc + lag, CHUNK, Dd)
    vp = F.pad(v, (0, 0, w, 0)).view(B, Hh, nc + lag, CHUNK, Dd)
    kb = torch.cat([kp[:, :, s:s + nc] for s in range(lag + 1)], 3)  # (B, H, nc, 64 + w, D)
    vb = torch.cat([vp[:, :, s:s + nc] for s in range(lag + 1)], 3)
    i = torch.arange(CHUNK, device=q.device).view(1, CHUNK, 1) + CHUNK * torch.arange(nc, device=q.device).view(nc, 1, 1)
    j = i - i % CHUNK - w + torch.arange(CHUNK + w, device=q.device).view(1, 1, -1)
    allowed = (j <= i) & (j > i - w) & (j >= 0)  # (nc, 64, 64 + w)
    s = (q.view(B, Hh, nc, CHUNK, Dd) @ kb.transpose(-1, -2)).float() * scale
    s = s.masked_fill(~allowed, float("-inf"))
    m = s.amax(-1, keepdim=True).clamp_min(0)
    p = torch.exp(s - m)
    num = p.to(v.dtype) @ vb
    den = p.sum(-1, keepdim=True)
    # Linear: keys j <= i - w, the chunked form with φk and v shifted `lag` chunks later.
    fq = hedgehog(q, wq).view(B, Hh, nc, CHUNK, -1)
    fk = F.pad(hedgehog(k, wk), (0, 0, w, 0))[:, :, :N].reshape(B, Hh, nc, CHUNK, -1)
    vs = F.pad(v, (0, 0, w, 0))[:, :, :N].reshape(B, Hh, nc, CHUNK, Dd)
    tri = torch.ones(CHUNK, CHUNK, device=q.device, dtype=torch.bool).tril()
    a = (fq @ fk.transpose(-1, -2)).masked_fill(~tri, 0)
    kv = fk.transpose(-1, -2) @ vs
    st = kv.cumsum(2) - kv
    zk = fk.sum(3)
    z = zk.cumsum(2) - zk
    lin_num = (a @ vs + fq @ st).float()
    lin_den = (a.sum(-1) + (fq * z.unsqueeze(3)).sum(-1)).float().unsqueeze(-1)
    e = torch.exp(-m)
    y = (num.float() + e * lin_num) / (den + e * (lin_den + eps))
    return y.to(q.dtype).view(B, Hh, N, Dd)


def naive(q, k, v, wq, wk, w=WINDOW, eps=1e-6):
    # The definition with N×N matrices, float32: checks the chunked peer before it is timed.
    n = q.shape[2]
    i = torch.arange(n, device=q.device).view(-1, 1)
    j = torch.arange(n, device=q.device).view(1, -1)
    win, old = (j <= i) & (j > i - w), j <= i - w
    s = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    m = s.masked_fill(~win, float("-inf")).amax(-1, keepdim=True).clamp_min(0)
    p = torch.exp(s - m).masked_fill(~win, 0)
    a = (hedgehog(q.float(), wq.float()) @ hedgehog(k.float(), wk.float()).transpose(-1, -2)).masked_fill(~old, 0)
    e = torch.exp(-m)
    return (p @ v.float() + e * (a @ v.float())) / (p.sum(-1, keepdim=True) + e * (a.sum(-1, keepdim=True) + eps))


def self_check():
    q, k, v, _, wq, wk = make_inputs(TOKENS // 2, False)
    with torch.no_grad():
        q, k, v = (t[:1, :2, :640] for t in (q, k, v))
        got, ref = hybrid(q, k, v, wq[:2], wk[:2]).float(), naive(q, k, v, wq[:2], wk[:2])
    err = ((got - ref).norm() / ref.norm()).item()
    print(f"hybrid peer vs naive definition (N=640): rel-L2 {err:.2e}", file=sys.stderr)
    # bf16 inputs, probabilities and output: ~5e-3; a wrong band edge or lag errs by > 1e-1.
    return err < 2e-2


def hybrid_peers(workloads):
    compiled = torch.compile(hybrid)
    for n in (2048, 8192):
        inputs = make_inputs(n, True)
        for name, f in (("torch-chunked-eager", hybrid), ("torch-chunked-compile", compiled)):
            add_fwd_fwdbwd(workloads, "hybrid_hh_w256", n, name, f, inputs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--filter", default="")
    args = ap.parse_args()
    words = [w for w in args.filter.split(",") if w]
    if words and not any(w in "hybrid_hh_w256" for w in words):
        return 0
    if not self_check():
        print("hybrid peer disagrees with the definition: not timed", file=sys.stderr)
        return 1
    workloads = []
    hybrid_peers(workloads)
    time_workloads(workloads, words)
    return 0


if __name__ == "__main__":
    sys.exit(main())
