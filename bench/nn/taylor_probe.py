# MQAR conversion probe in PyTorch: how much of a softmax teacher's recall each feature map keeps
# when it replaces one attention layer (or both), trained by attention distillation alone, and
# whether Taylor-2 gains from an affine projection u = xW + b in place of BASED's linear u = xW.
#
# The teacher is a 2-layer GPT (width 256, 4 heads of 64, MLP 512, GPT-2 initialisation, tied head)
# trained on MQAR (L 256, kv 16, vocabulary 8192) in bf16 autocast: AdamW lr 1e-3, weight decay 0.1,
# batch 64, 500 warmup steps, cosine to 10 % over --teacher-steps, stopping at 99.5 % held-out
# accuracy. Each student map is trained per layer on the frozen teacher's q, k (AdamW lr 3e-2,
# batch 32, the cross-entropy between the teacher's causal softmax weights and the map's), then
# installed in place of the teacher's attention for the accuracy. On the GPU machine:
#   python3 bench/nn/taylor_probe.py --teacher-steps 14000 --save teacher.pt --steps 1000
#   python3 bench/nn/taylor_probe.py --load teacher.pt --steps 1000,3000
# --scion DIR loads a Scion checkpoint folder of the same shape instead (GPT-2 tensor names and
# layouts, tanh GELU): one written by `scion-nn-mqar --save DIR`, or a `train` job's model artifact
# saved as DIR/model.safetensors (`scion artifacts get job:<id>/model --out ...`). --query-rows 1
# trains layer 1's maps on the rows that predict a value only (the rows MQAR scores), not every row.
# --objective task trains each layer's maps on the task's own loss instead (the whole model's
# cross-entropy on the scored rows, everything but the maps frozen): what attention distillation
# stands in for, so a yardstick for any stage-1 objective of that map and layer (an optimiser's
# result, not a proven optimum). --vocab sets MQAR's V (a loaded teacher must match).
import argparse, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--teacher-steps", type=int, default=14000)
ap.add_argument("--load", default="")
ap.add_argument("--save", default="")
ap.add_argument("--scion", default="")
ap.add_argument("--steps", default="1000")  # stage-1 budgets, comma-separated
ap.add_argument("--maps", default="hedgehog,taylor2,taylor2-affine,taylor2-64-affine")
ap.add_argument("--query-rows", default="")  # layers distilled on the query rows alone, e.g. "1"
ap.add_argument("--objective", default="kl", choices=["kl", "task"])
ap.add_argument("--vocab", type=int, default=8192)
a = ap.parse_args()

torch.manual_seed(0)
dev = "cuda"
V, L, KV, C, H, HD, MLP = a.vocab, 256, 16, 256, 4, 64, 512
gen = torch.Generator().manual_seed(1)


def mqar(B):
    """Zoology's MQAR: k1 v1 … k16 v16, then each key again at a gap, labelled with its value."""
    ctx, nq = 2 * KV, (L - 2 * KV) // 2
    keys = torch.stack([torch.randperm(V // 2 - 1, generator=gen)[:KV] + 1 for _ in range(B)])
    vals = torch.stack([torch.randperm(V // 2, generator=gen)[:KV] + V // 2 for _ in range(B)])
    p = torch.arange(1, nq + 1, dtype=torch.float) ** (0.01 - 1)
    gaps = torch.stack([torch.multinomial(p, KV, replacement=False, generator=gen) for _ in range(B)])
    tail = torch.zeros(B, L - ctx + 1, dtype=torch.long).scatter_(1, gaps * 2, keys)
    tokens = torch.cat([torch.stack([keys, vals], 2).reshape(B, ctx), tail], 1)
    labels = torch.full((B, L + 1), -100, dtype=torch.long).scatter_(1, gaps * 2 + ctx + 1, vals)
    return tokens[:, :-1].to(dev), labels[:, 1:].to(dev)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.out = nn.Linear(C, MLP), nn.Linear(MLP, C)
        self.gelu = "tanh" if a.scion else "none"  # Scion's GELU is GPT-2's tanh form
        self.student = None  # a map's (q, k) -> causal weights, or None for softmax

    def qk(self, x):
        return self.qkv(self.ln1(x)).view(x.shape[0], L, 3, H, HD).permute(2, 0, 3, 1, 4)

    def forward(self, x):
        q, k, v = self.qk(x)
        if self.student is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = self.student(q, k) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(x.shape[0], L, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate=self.gelu))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.pos = nn.Embedding(V, C), nn.Parameter(torch.randn(L, C) * 0.02)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.lnf, self.head = nn.LayerNorm(C), nn.Linear(C, V, bias=False)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "ln" not in name:
                nn.init.normal_(p, 0, 0.01 if name.endswith(("proj.weight", "out.weight")) else 0.02)
        self.head.weight = self.emb.weight

    def forward(self, t):
        x = self.emb(t) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.head(self.lnf(x))

    def qks(self, t):  # the teacher's q, k of every layer
        x, out = self.emb(t) + self.pos, []
        for b in self.blocks:
            q, k, _ = b.qk(x)
            out.append((q, k))
            x = b(x)
        return out


def accuracy(model, data):
    ok = n = 0
    with torch.no_grad():
        for t, lab in data:
            mask = lab != -100
            ok += (model(t).argmax(-1)[mask] == lab[mask]).sum().item()
            n += mask.sum().item()
    return ok / n


held = [mqar(32) for _ in range(4)]  # 128 examples, 2048 queries
teacher = GPT().to(dev)
if a.load:
    teacher.load_state_dict(torch.load(a.load))
elif a.scion:
    from safetensors.torch import load_file
    w = load_file(f"{a.scion}/model.safetensors", device=dev)
    names = {"emb.weight": "wte.weight", "pos": "wpe.weight", "lnf.weight": "ln_f.weight", "lnf.bias": "ln_f.bias"}
    for i in range(2):
        for ours, gpt2 in (("ln1", "ln_1"), ("ln2", "ln_2"), ("qkv", "attn.c_attn"), ("proj", "attn.c_proj"),
                           ("fc", "mlp.c_fc"), ("out", "mlp.c_proj")):
            for p in ("weight", "bias"):
                names[f"blocks.{i}.{ours}.{p}"] = f"h.{i}.{gpt2}.{p}"
    state = {}
    for ours, gpt2 in names.items():
        t = w["transformer." + gpt2]
        conv1d = gpt2.endswith("weight") and t.dim() == 2 and gpt2.startswith("h.")  # stored [in, out]
        state[ours] = t.t().contiguous() if conv1d else t
    state["head.weight"] = state["emb.weight"]
    teacher.load_state_dict(state)
else:
    opt, warm, t0 = torch.optim.AdamW(teacher.parameters(), lr=1e-3, weight_decay=0.1), 500, time.time()
    for step in range(1, a.teacher_steps + 1):
        frac = (step - warm) / (a.teacher_steps - warm)
        lr = 1e-3 * (step / warm if step < warm else 0.1 + 0.45 * (1 + math.cos(math.pi * frac)))
        for group in opt.param_groups:
            group["lr"] = lr
        t, lab = mqar(64)
        with torch.autocast("cuda", torch.bfloat16):
            loss = F.cross_entropy(teacher(t).view(-1, V).float(), lab.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            acc = accuracy(teacher, held)
            print(f"teacher step {step}: loss {loss.item():.3f}, accuracy {acc:.3f} ({time.time() - t0:.0f} s)", flush=True)
            if acc >= 0.995:
                break
    if a.save:
        torch.save(teacher.state_dict(), a.save)
teacher.eval()
teacher.requires_grad_(False)
causal = torch.ones(L, L, device=dev, dtype=torch.bool).tril()


def normalise(w):
    w = w.masked_fill(~causal, 0)
    return w / w.sum(-1, keepdim=True)


def softmax_weights(q, k):
    return (q @ k.transpose(-1, -2) / math.sqrt(HD)).masked_fill(~causal, float("-inf")).softmax(-1)


class Taylor2(nn.Module):
    """φ(u)·φ(u') = 1 + s + s²/2, s = u·u'/√d'; u = xW (+ b when affine). Scion's initialisation."""

    def __init__(self, d, affine):
        super().__init__()
        def w():
            return torch.eye(HD).repeat(H, 1, 1) if d == HD else torch.randn(H, HD, d) / (d * HD) ** 0.25
        self.wq, self.wk = nn.Parameter(w()), nn.Parameter(w())
        self.bq = nn.Parameter(torch.zeros(H, 1, d)) if affine else None
        self.bk = nn.Parameter(torch.zeros(H, 1, d)) if affine else None

    def forward(self, q, k):
        uq, uk = q @ self.wq, k @ self.wk
        if self.bq is not None:
            uq, uk = uq + self.bq, uk + self.bk
        s = uq @ uk.transpose(-1, -2) / math.sqrt(uq.shape[-1])
        return normalise(1 + s + 0.5 * s * s)


class Hedgehog(nn.Module):
    """φ(x) = [softmax(xW), softmax(−xW)], W identity at the start, one per side."""

    def __init__(self):
        super().__init__()
        self.wq, self.wk = (nn.Parameter(torch.eye(HD).repeat(H, 1, 1)) for _ in range(2))

    def forward(self, q, k):
        def phi(x, w):
            u = x @ w
            return torch.cat([u.softmax(-1), (-u).softmax(-1)], -1)
        return normalise(phi(q, self.wq) @ phi(k, self.wk).transpose(-1, -2))


def entropy(w):
    return -(w * w.clamp_min(1e-30).log()).sum(-1).mean().item()


query_rows = {int(x) for x in a.query_rows.split(",") if x}


def scored(lab):
    """The (B, H, L) mask of the rows whose next token MQAR scores (its queries), from labels (B, L)."""
    return (lab != -100).unsqueeze(1).expand(-1, H, -1)


def distill(student, layer, steps):
    student = student.to(dev)
    opt = torch.optim.AdamW(student.parameters(), lr=3e-2, weight_decay=0.0)
    for _ in range(steps):
        t, lab = mqar(32)
        if a.objective == "task":  # the map in place, the frozen model's loss on the scored rows
            teacher.blocks[layer].student = student
            loss = F.cross_entropy(teacher(t).view(-1, V), lab.reshape(-1), ignore_index=-100)
            teacher.blocks[layer].student = None
        else:
            with torch.no_grad():
                q, k = teacher.qks(t)[layer]
                target = softmax_weights(q, k)
            ce = -(target * student(q, k).clamp_min(1e-30).log()).sum(-1)  # [B, H, L]
            loss = ce[scored(lab)].mean() if layer in query_rows else ce.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return student


def report(name, students):
    cols = []
    with torch.no_grad():
        qks = teacher.qks(held[0][0])
        rows = scored(held[0][1])
        for layer, student in students.items():
            target, w = softmax_weights(*qks[layer]), student(*qks[layer])
            kl = (target * (target.clamp_min(1e-30).log() - w.clamp_min(1e-30).log())).sum(-1)
            cols.append(f"layer {layer}: KL {kl.mean().item():.3f} (query rows {kl[rows].mean().item():.3f}), "
                        f"entropy {entropy(w):.3f} / {entropy(target):.3f}")
            teacher.blocks[layer].student = student
        acc = accuracy(teacher, held)
        for b in teacher.blocks:
            b.student = None
    print(f"{name:40s} accuracy {acc:.3f}   " + "   ".join(cols), flush=True)


print(f"teacher accuracy {accuracy(teacher, held):.3f}")
for layer in range(2):
    with torch.no_grad():
        target = softmax_weights(*teacher.qks(held[0][0])[layer])
        print(f"teacher layer {layer}: entropy {entropy(target):.3f}, on query rows "
              f"{entropy(target[scored(held[0][1])]):.3f}")
maps = {"hedgehog": Hedgehog, "taylor2": lambda: Taylor2(16, False),
        "taylor2-affine": lambda: Taylor2(16, True), "taylor2-64-affine": lambda: Taylor2(64, True)}
for steps in (int(s) for s in a.steps.split(",")):
    for name in a.maps.split(","):
        make = maps[name]
        s0, s1 = distill(make(), 0, steps), distill(make(), 1, steps)
        report(f"{name}, {steps} steps, layer 0", {0: s0})
        report(f"{name}, {steps} steps, layer 1", {1: s1})
        report(f"{name}, {steps} steps, both", {0: s0, 1: s1})
