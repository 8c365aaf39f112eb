# MQAR recipe sweep on a GPU: M independent copies of Scion's model (GPT-2: learned positions,
# pre-LN, GELU-tanh MLP, tied head, init N(0,0.02), c_proj N(0,0.02/sqrt(2L)), LN eps 1e-5; AdamW
# b1 .9, eps 1e-8, per-model global-norm clip 1, linear warmup then cosine to 0.1 — the same maths
# as nn/ in fp32, written in PyTorch) trained at once, each with its own data stream (GenerateMqar's
# distribution), learning rate and init scale. One process per shape; many seeds per process make
# a plateau's spread visible in a minute. scion-nn-mqar (the C++ model) confirms what it finds.
#   python3 mqar_sweep.py --name g --H 1 --kvs 4,8,16 --mix 1 --warmup 500 --wd 0.5 --lrs 2e-3,3e-3 --seeds 4
# Prints held-out accuracy (kv=4, L=64) every --every steps, then per model the first step at
# >= 0.9 and >= 0.5 and the final accuracy.
import argparse, math, sys, time
import torch
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"

ap = argparse.ArgumentParser()
ap.add_argument("--name", default="g")
ap.add_argument("--C", type=int, default=32)
ap.add_argument("--H", type=int, default=2)
ap.add_argument("--mlp", type=int, default=64)
ap.add_argument("--layers", type=int, default=2)
ap.add_argument("--V", type=int, default=64)
ap.add_argument("--L", type=int, default=64)
ap.add_argument("--B", type=int, default=32)
ap.add_argument("--kvs", default="4")
ap.add_argument("--lrs", default="3e-3")
ap.add_argument("--inits", default="1")
ap.add_argument("--seeds", type=int, default=4)
ap.add_argument("--steps", type=int, default=4000)
ap.add_argument("--every", type=int, default=250)
ap.add_argument("--warmup", type=int, default=20)
ap.add_argument("--wd", type=float, default=0.0)
ap.add_argument("--b2", type=float, default=0.98)
ap.add_argument("--fill", type=int, default=0)
ap.add_argument("--deadline", type=float, default=1e9)  # wall seconds
ap.add_argument("--mix", type=int, default=0)  # 1: every step holds all kvs (equal-weight mean of per-kv losses)
ap.add_argument("--curL", default="")  # "16:1500": steps < 1500 train at L=16 (kvs with 4kv <= 16)
a = ap.parse_args()
t_start = time.time()


def mqar(n, V, L, kv, gen, fill):
    half = V // 2
    keys = torch.rand(n, half - 1, generator=gen, device=dev).argsort(dim=1)[:, :kv] + 1
    vals = torch.rand(n, V - half, generator=gen, device=dev).argsort(dim=1)[:, :kv] + half
    ctx = 2 * kv
    space = (L - ctx) // 2
    w = torch.arange(1, space + 1, device=dev, dtype=torch.float32) ** (0.01 - 1.0)
    gaps = torch.multinomial(w.expand(n, space).contiguous(), kv, replacement=False, generator=gen)
    inp = torch.zeros(n, L, dtype=torch.long, device=dev)
    tgt = torch.full((n, L), -100, dtype=torch.long, device=dev)
    inp[:, 0:ctx:2] = keys
    inp[:, 1:ctx:2] = vals
    pos = ctx + 2 * gaps
    inp.scatter_(1, pos, keys)
    tgt.scatter_(1, pos, vals)
    if fill:
        r = torch.randint(0, V, (n, L), generator=gen, device=dev)
        m = (tgt < 0)
        m[:, :ctx] = False
        inp = torch.where(m, r, inp)
    return inp, tgt


lrs = [float(x) for x in a.lrs.split(",")]
inits = [float(x) for x in a.inits.split(",")]
kvs = [int(x) for x in a.kvs.split(",")]
combos = [(lr, ini, s) for lr in lrs for ini in inits for s in range(a.seeds)]
M = len(combos)
C, H, Hm, NL, V, L, B = a.C, a.H, a.mlp, a.layers, a.V, a.L, a.B
D = C // H

# Flat parameter buffer (M, P); each tensor a view of it.
shapes = [("wte", (V, C), 0.02), ("wpe", (L, C), 0.02)]
proj = 0.02 / math.sqrt(2 * NL)
for l in range(NL):
    shapes += [(f"ln1w{l}", (C,), "one"), (f"ln1b{l}", (C,), 0), (f"aw{l}", (C, 3 * C), 0.02),
               (f"ab{l}", (3 * C,), 0), (f"pw{l}", (C, C), proj), (f"pb{l}", (C,), 0),
               (f"ln2w{l}", (C,), "one"), (f"ln2b{l}", (C,), 0), (f"fw{l}", (C, Hm), 0.02),
               (f"fb{l}", (Hm,), 0), (f"f2w{l}", (Hm, C), proj), (f"f2b{l}", (C,), 0)]
shapes += [("lnfw", (C,), "one"), ("lnfb", (C,), 0)]
offs, P = {}, 0
for n, s, _ in shapes:
    k = math.prod(s)
    offs[n] = (P, k, s)
    P += k
flat = torch.zeros(M, P, device=dev)
gen0 = torch.Generator(device=dev)
gen0.manual_seed(12345 + sum(map(ord, a.name)))
scale = torch.tensor([c[1] for c in combos], device=dev)
decay_mask = torch.zeros(P, device=dev)
for n, s, st in shapes:
    o, k, _ = offs[n]
    if st == "one":
        flat[:, o:o + k] = 1
    elif st != 0:
        flat[:, o:o + k] = torch.randn(M, k, generator=gen0, device=dev) * st * scale[:, None]
    if len(s) == 2:
        decay_mask[o:o + k] = 1
flat.requires_grad_(True)


def p(n):
    o, k, s = offs[n]
    return flat[:, o:o + k].view(M, *s)


def ln(x, w, b):
    x = F.layer_norm(x, (C,), eps=1e-5)
    return x * w[:, None, :] + b[:, None, :]


def forward(tok):  # tok (M, B, T) -> logits (M, B*T, V)
    Mb, Bb, T = tok.shape
    wte = p("wte")
    idx = tok + (torch.arange(M, device=dev) * V)[:, None, None]
    x = wte.reshape(M * V, C)[idx.reshape(-1)].view(M, Bb * T, C)
    x = x + p("wpe")[:, :T, :].repeat(1, Bb, 1)
    for l in range(NL):
        h = ln(x, p(f"ln1w{l}"), p(f"ln1b{l}"))
        qkv = torch.baddbmm(p(f"ab{l}")[:, None, :], h, p(f"aw{l}"))
        q, k, v = qkv.split(C, dim=-1)
        q, k, v = (t.reshape(M * Bb, T, H, D).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(M, Bb * T, C)
        x = x + torch.baddbmm(p(f"pb{l}")[:, None, :], y, p(f"pw{l}"))
        h = ln(x, p(f"ln2w{l}"), p(f"ln2b{l}"))
        f = F.gelu(torch.baddbmm(p(f"fb{l}")[:, None, :], h, p(f"fw{l}")), approximate="tanh")
        x = x + torch.baddbmm(p(f"f2b{l}")[:, None, :], f, p(f"f2w{l}"))
    h = ln(x, p("lnfw"), p("lnfb"))
    return torch.bmm(h, wte.transpose(1, 2))


def loss_fn(logits, tgt):  # tgt (M, B, T)
    t = tgt.reshape(M, -1)
    ce = F.cross_entropy(logits.reshape(-1, V), t.reshape(-1), ignore_index=-100, reduction="none").view(M, -1)
    cnt = (t >= 0).sum(1).clamp(min=1)
    return ce.sum(1) / cnt


gen_test = torch.Generator(device=dev)
gen_test.manual_seed(777)
test_in, test_tg = mqar(256, V, L, 4, gen_test, a.fill)


@torch.no_grad()
def accuracy():
    acc = torch.zeros(M, device=dev)
    for r in range(0, 256, 128):
        ti = test_in[r:r + 128].expand(M, -1, -1)
        tt = test_tg[r:r + 128].expand(M, -1, -1).reshape(M, -1)
        pred = forward(ti).argmax(-1)
        acc += ((pred == tt) & (tt >= 0)).sum(1).float()
    return acc / (test_tg >= 0).sum().float()


lr_t = torch.tensor([c[0] for c in combos], device=dev)
m_buf = torch.zeros_like(flat)
v_buf = torch.zeros_like(flat)
b1, b2, eps = 0.9, a.b2, 1e-8
gen = torch.Generator(device=dev)
gen.manual_seed(999 + sum(map(ord, a.name)))
first90 = [None] * M
first50 = [None] * M
hist = []
step = 0
for step in range(a.steps):
    Lc = L
    if a.curL and step < int(a.curL.split(":")[1]):
        Lc = int(a.curL.split(":")[0])
    ks = [k for k in kvs if 4 * k <= Lc]
    if a.mix:
        Bk = B // len(ks)
        parts = [mqar(M * Bk, V, Lc, k, gen, a.fill) for k in ks]
        logits = forward(torch.cat([q[0].view(M, Bk, Lc) for q in parts], 1))  # (M, n*Bk*Lc, V)
        lg = logits.view(M, len(ks), Bk * Lc, V)
        loss = sum(loss_fn(lg[:, j], parts[j][1].view(M, Bk, Lc)) for j in range(len(ks))) / len(ks)
    else:
        kv = ks[step % len(ks)]
        inp, tgt = mqar(M * B, V, Lc, kv, gen, a.fill)
        loss = loss_fn(forward(inp.view(M, B, Lc)), tgt.view(M, B, Lc))
    flat.grad = None
    loss.sum().backward()
    with torch.no_grad():
        g = flat.grad
        norm = g.pow(2).sum(1).sqrt()
        coef = torch.clamp(1.0 / (norm + 1e-12), max=1.0)
        g = g * coef[:, None]
        if step < a.warmup:
            f = (step + 1) / a.warmup
        else:
            pr = (step - a.warmup) / max(1, a.steps - a.warmup)
            f = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * pr))
        t = step + 1
        m_buf.mul_(b1).add_(g, alpha=1 - b1)
        v_buf.mul_(b2).addcmul_(g, g, value=1 - b2)
        upd = (m_buf / (1 - b1 ** t)) / ((v_buf / (1 - b2 ** t)).sqrt() + eps)
        upd = upd + a.wd * decay_mask * flat
        flat.sub_(upd * (lr_t * f)[:, None])
    if (step + 1) % a.every == 0 or step + 1 == a.steps:
        acc = accuracy().tolist()
        for i, x in enumerate(acc):
            if x >= 0.9 and first90[i] is None:
                first90[i] = step + 1
            if x >= 0.5 and first50[i] is None:
                first50[i] = step + 1
        hist.append((step + 1, acc))
        print(f"{a.name} step {step+1} t={time.time()-t_start:.0f}s loss {loss.mean().item():.3f} acc " +
              " ".join(f"{x:.2f}" for x in acc), flush=True)
        if time.time() - t_start > a.deadline:
            break
print(f"SUMMARY {a.name} C{C} H{H} mlp{Hm} nl{NL} V{V} B{B} kvs{a.kvs} mix{a.mix} curL{a.curL} wu{a.warmup} wd{a.wd} fill{a.fill} steps_done {step+1}")
for i, (lr, ini, s) in enumerate(combos):
    print(f"  {a.name} lr {lr:g} init {ini:g} seed {s}: first>=0.9 at {first90[i]} (0.5 at {first50[i]}) final {hist[-1][1][i]:.3f}")
