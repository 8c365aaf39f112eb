#!/usr/bin/env python3
"""Golden fixtures for the nn/ CPU path, from Hugging Face transformers (offline).

Builds a small GPT2LMHeadModel, saves it with save_pretrained (model.safetensors + config.json),
and dumps into one safetensors file: the inputs and targets, the logits, the loss, the gradient of
every parameter, and the losses of 10 AdamW steps (constant lr, grad-norm clip, weight decay on
matrices only). tests/nn/golden_test.cc compares the CPU path against these.

Run on a machine with torch + transformers:  python3 scripts/hf_golden.py --out tests/nn/fixtures
--n-head 2 gives head width 16 (the checked-in fixture has 8): the CUDA attention kernels take
D in {16, 32, 64, 128}, so the CUDA model check (scion-nn-check) runs on such a fixture.

--check-scion DIR does the opposite direction: loads a Scion softmax-only checkpoint folder (with
expected.safetensors: input_ids and the logits Scion computed) in GPT2LMHeadModel and compares.
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel

B, T = 2, 16
LR, BETAS, EPS, WD, CLIP, STEPS = 1e-3, (0.9, 0.95), 1e-8, 0.1, 1.0, 10


def check_scion(folder):
    model = GPT2LMHeadModel.from_pretrained(folder).float().eval()
    exp = load_file(os.path.join(folder, "expected.safetensors"))
    with torch.no_grad():
        logits = model(exp["input_ids"].long()).logits
    diff = (logits - exp["logits"]).abs().max().item()
    # fp32 both sides, different summation order: agreement to ~1e-6; 1e-4 leaves headroom.
    ok = diff < 1e-4
    print(json.dumps({"check_scion": folder, "max_abs_logit_diff": diff, "ok": ok}))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--check-scion")
    ap.add_argument("--n-head", type=int, default=4)
    args = ap.parse_args()
    if args.check_scion:
        raise SystemExit(check_scion(args.check_scion))
    torch.manual_seed(1234)
    cfg = GPT2Config(vocab_size=96, n_positions=32, n_embd=32, n_layer=2, n_head=args.n_head,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=True)
    model = GPT2LMHeadModel(cfg).float()
    model.eval()  # no dropout (all p = 0 anyway)
    # Random, not default-initialised, LayerNorm and bias values, so their gradients and uses are
    # exercised rather than sitting at 1 / 0.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    model_dir = os.path.join(args.out, "hf_tiny")
    model.save_pretrained(model_dir, safe_serialization=True)

    ids = torch.randint(0, cfg.vocab_size, (B, T))
    targets = torch.randint(0, cfg.vocab_size, (B, T))
    targets[0, 3] = -100  # an ignored position, as MQAR uses

    def loss_of(logits):
        return F.cross_entropy(logits.view(-1, cfg.vocab_size), targets.view(-1), ignore_index=-100)

    logits = model(ids).logits
    loss = loss_of(logits)
    model.zero_grad()
    loss.backward()
    out = {
        "input_ids": ids.float(), "targets": targets.float(),
        "logits": logits.detach().contiguous(), "loss": loss.detach().reshape(1),
    }
    for name, p in model.named_parameters():
        out["grad." + name] = p.grad.detach().clone().contiguous()

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=EPS)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        l = loss_of(model(ids).logits)
        l.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        losses.append(l.item())
    out["adam_losses"] = torch.tensor(losses)
    save_file(out, os.path.join(args.out, "hf_golden.safetensors"),
              metadata={"lr": str(LR), "beta1": str(BETAS[0]), "beta2": str(BETAS[1]), "eps": str(EPS),
                        "weight_decay": str(WD), "grad_clip": str(CLIP), "steps": str(STEPS)})
    print(json.dumps({"loss": loss.item(), "adam_losses": losses}))


if __name__ == "__main__":
    main()
