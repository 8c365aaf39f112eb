#!/usr/bin/env python3
"""PyTorch peers of scion-nn-bench: the same GPT-2 small training step (transformers
GPT2LMHeadModel, SDPA attention, bf16 autocast over fp32 weights, fused AdamW, clip 1.0) in eager
mode and under torch.compile, printed as CSV rows in scion-nn-bench's format.

    python3 bench/nn/peers.py [--filter WORD] [--steps N]
"""
import argparse
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

WORKLOADS = [  # (impl, model, B, T)
    ("torch-eager", "gpt2-124M softmax", 8, 1024),
    ("torch-compile", "gpt2-124M softmax", 8, 1024),
    ("torch-eager", "gpt2-124M softmax", 2, 4096),
    ("torch-eager", "gpt2-124M softmax", 1, 16384),
]


def run(impl, name, B, T, steps):
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=50257, n_positions=max(1024, T), n_embd=768, n_layer=12, n_head=12,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg).cuda().train()  # transformers picks SDPA attention where torch has it
    print(f"{impl} T{T}: attention {model.config._attn_implementation}", file=sys.stderr)
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    fwd = torch.compile(model) if impl == "torch-compile" else model
    ids = torch.randint(0, 50257, (B, T), device="cuda")
    tgt = torch.randint(0, 50257, (B, T), device="cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, 50257), tgt.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()  # one host sync per step, as scion-nn-bench

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"{impl},{name},{B},{T},{1e3 * secs / steps:.2f},{B * T * steps / secs:.0f},{peak:.2f},{loss:.3f}",
          flush=True)
    del model, opt, fwd
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--filter", default="")
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    for impl, name, B, T in WORKLOADS:
        if a.filter and a.filter not in f"{name} T{T}":
            continue
        try:
            run(impl, name, B, T, a.steps)
        except Exception as e:  # a peer that cannot run (OOM, compile failure) leaves a note, not a hole
            print(f"{impl} {name} T{T}: {type(e).__name__}: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
