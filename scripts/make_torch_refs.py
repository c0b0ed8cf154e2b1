#!/usr/bin/python3
"""Writes tests/data/gpt2_ref.safetensors: a small random GPT-2 in plain
PyTorch (Debian's python3-torch; no transformers needed), one batch, its loss,
logits and every parameter gradient, and the losses of 5 AdamW steps with
gradient clipping. tests/test_gpt2.c loads it and checks our C model.

Also writes tests/data/hf_tiny/: the same weights as
GPT2LMHeadModel.save_pretrained lays them out (config.json with Hugging Face's
keys, model.safetensors with "transformer." names, metadata format=pt, the
tied lm_head left out, and a legacy attn.masked_bias buffer that loaders must
ignore), for the init_from=hf:DIR and checkpoint-layout tests.

And tests/data/attn_refs.safetensors: a one-layer GPT-2 whose attention is
each of the other kinds (exact polynomial; PolySketch with a random sketch of
degree 4 and 8, local exact on and off, and with a learned sketch), written
here densely (explicit masked T x T weights, no blocks, no prefix sums) and
run in float64: per kind the loss, logits and every parameter gradient but
the MLP's, which attention's backward does not reach, and for two kinds the
losses of 5 AdamW steps and the kind's own tensors after them (which of
them train and which decay).
tests/test_gpt2.c checks the C kinds' block algorithms against it.

And tests/data/dropout_ref.safetensors: another small GPT-2 trained with
dropout (p = 0.25 on the embeddings and on each residual branch, where GPT-2
has embd_pdrop and resid_pdrop), its masks computed here from
model/ops.h's definition: loss, logits and every gradient.

Weights use Hugging Face GPT-2 names and layouts (Conv1D weights [in, out]).
Biases and LayerNorm parameters are random too, so every path is exercised.

    /usr/bin/python3 scripts/make_torch_refs.py
"""
import json
import math
import os
import struct

import numpy as np
import torch

torch.manual_seed(1234)
torch.set_num_threads(1)

CFG = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=192)
B, T = 2, 24
OPT = dict(lr=1e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=0.5, steps=5)


def make_params(cfg=CFG):
    L, C, V, P = cfg["n_layer"], cfg["n_embd"], cfg["vocab_size"], cfg["block_size"]
    r = lambda *shape, std=0.02: (torch.randn(*shape) * std).requires_grad_()
    p = {"transformer.wte.weight": r(V, C), "transformer.wpe.weight": r(P, C)}
    for i in range(L):
        h = f"transformer.h.{i}."
        p[h + "ln_1.weight"] = (1 + torch.randn(C) * 0.1).requires_grad_()
        p[h + "ln_1.bias"] = r(C, std=0.1)
        p[h + "attn.c_attn.weight"] = r(C, 3 * C)
        p[h + "attn.c_attn.bias"] = r(3 * C)
        p[h + "attn.c_proj.weight"] = r(C, C)
        p[h + "attn.c_proj.bias"] = r(C)
        p[h + "ln_2.weight"] = (1 + torch.randn(C) * 0.1).requires_grad_()
        p[h + "ln_2.bias"] = r(C, std=0.1)
        p[h + "mlp.c_fc.weight"] = r(C, 4 * C)
        p[h + "mlp.c_fc.bias"] = r(4 * C)
        p[h + "mlp.c_proj.weight"] = r(4 * C, C)
        p[h + "mlp.c_proj.bias"] = r(C)
    p["transformer.ln_f.weight"] = (1 + torch.randn(C) * 0.1).requires_grad_()
    p["transformer.ln_f.bias"] = r(C, std=0.1)
    return p


def softmax_attention(a, q, k, v):
    """Causal softmax attention of q, k, v [B, H, T, hs] (a: the layer's attention tensors, none here)."""
    Ts = q.shape[-2]
    mask = torch.tril(torch.ones(Ts, Ts, dtype=torch.bool))
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return att @ v


def forward(p, idx, attention=softmax_attention, cfg=CFG, drop=None):
    """GPT-2 as in the original: pre-LN, tanh GELU, causal softmax attention (or the given kind);
    drop(x, site) where GPT-2 has embd_pdrop (site 0) and resid_pdrop (sites 1 + 2 i, 2 + 2 i)."""
    L, H, C = cfg["n_layer"], cfg["n_head"], cfg["n_embd"]
    Bs, Ts = idx.shape
    ln = lambda x, n: torch.nn.functional.layer_norm(x, (C,), p[n + ".weight"], p[n + ".bias"], 1e-5)
    # x + (proj + bias) with dropout; (x + proj) + bias as the committed references were made without
    branch = lambda x, y, w, b, site: x + y @ w + b if drop is None else x + drop(y @ w + b, site)
    x = p["transformer.wte.weight"][idx] + p["transformer.wpe.weight"][:Ts]
    x = x if drop is None else drop(x, 0)
    for i in range(L):
        h = f"transformer.h.{i}."
        a = ln(x, h + "ln_1") @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]
        q, k, v = (t.view(Bs, Ts, H, C // H).transpose(1, 2) for t in a.split(C, dim=2))
        att = {n[len(h) + 5:]: t for n, t in p.items() if n.startswith(h + "attn.")}
        y = attention(att, q, k, v).transpose(1, 2).reshape(Bs, Ts, C)
        x = branch(x, y, p[h + "attn.c_proj.weight"], p[h + "attn.c_proj.bias"], 1 + 2 * i)
        m = ln(x, h + "ln_2") @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"]
        m = torch.nn.functional.gelu(m, approximate="tanh")
        x = branch(x, m, p[h + "mlp.c_proj.weight"], p[h + "mlp.c_proj.bias"], 2 + 2 * i)
    x = ln(x, "transformer.ln_f")
    return x @ p["transformer.wte.weight"].t()


def loss_and_grads(p, logits, targets, out):
    """The cross-entropy of logits, its backward; the loss, the logits and every gradient of p into out."""
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    out["loss"] = loss.detach().reshape(())
    out["logits"] = logits.detach()
    for k, v in p.items():
        out["grad." + k] = v.grad.detach().clone()
    return loss


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        dtype = {torch.float32: "F32", torch.int32: "I32"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    p = make_params()
    V = CFG["vocab_size"]
    idx = torch.randint(0, V, (B, T + 1))
    inputs, targets = idx[:, :-1].contiguous(), idx[:, 1:].contiguous()
    out = {k: v.detach().clone() for k, v in p.items()}
    out["inputs"] = inputs.to(torch.int32)
    out["targets"] = targets.to(torch.int32)

    loss_and_grads(p, forward(p, inputs), targets, out)

    # 5 AdamW steps on the same batch: decay on 2-D weights only, clipping on
    decay = [v for v in p.values() if v.dim() == 2]
    no_decay = [v for v in p.values() if v.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": OPT["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=OPT["lr"], betas=(OPT["beta1"], OPT["beta2"]), eps=OPT["eps"])
    losses, norms = [], []
    for step in range(OPT["steps"] + 1):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(forward(p, inputs).view(-1, V), targets.view(-1))
        losses.append(loss.item())
        if step == OPT["steps"]:
            break
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(list(p.values()), OPT["grad_clip"]).item())
        opt.step()
    assert norms[0] > OPT["grad_clip"], "pick a grad_clip that clips, so clipping is tested"
    out["adamw_losses"] = torch.tensor(losses)
    out["adamw_grad_norms"] = torch.tensor(norms)

    hf = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "hf_tiny")
    os.makedirs(hf, exist_ok=True)
    weights = {k: out[k] for k in p}
    weights["transformer.h.0.attn.masked_bias"] = torch.tensor(-1e4)
    write_safetensors(os.path.join(hf, "model.safetensors"), weights, {"format": "pt"})
    with open(os.path.join(hf, "config.json"), "w") as f:
        json.dump({"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
                   "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
                   "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": CFG["block_size"],
                   "n_embd": CFG["n_embd"], "n_head": CFG["n_head"], "n_inner": None, "n_layer": CFG["n_layer"],
                   "n_positions": CFG["block_size"], "reorder_and_upcast_attn": False, "resid_pdrop": 0.1,
                   "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
                   "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
                   "summary_type": "cls_index", "summary_use_proj": True, "torch_dtype": "float32",
                   "transformers_version": "4.46.0", "use_cache": True, "vocab_size": CFG["vocab_size"]},
                  f, indent=2, sort_keys=True)

    meta = {k: str(v) for k, v in {**CFG, **OPT, "batch_size": B, "seq_len": T}.items()}
    meta["torch"] = torch.__version__
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "gpt2_ref.safetensors")
    write_safetensors(path, out, meta)
    print(f"wrote {os.path.normpath(path)}: loss {out['loss'].item():.6f}, "
          f"AdamW losses {', '.join(f'{x:.6f}' for x in losses)}, grad norms {norms[0]:.3f}..")


# ---------------------------------------------------------------------------
# Dropout, for dropout_ref.safetensors: model/ops.h's counter-based masks,
# computed here from their definition, at GPT-2's dropout sites

M32, M64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
DROPOUT = dict(p=0.25, key=0x0123456789ABCDEF)


def mix32(x):
    """lowbias32 on a numpy uint32 array (multiplication wraps modulo 2^32)"""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def dropout_keep(n, p, key, site):
    """Which of n elements dropout_apply keeps (n < 2^32)."""
    k = splitmix64(key ^ (((site + 1) * 0xD1342543DE82EF95) & M64))
    k0, k1 = k & M32, k >> 32
    kk = k0 ^ int(mix32(np.array([k1], dtype=np.uint32))[0])
    h = mix32(mix32(np.arange(n, dtype=np.uint32) ^ np.uint32(kk)) + np.uint32(k1))
    return h >= np.uint32(int(p * 2.0**32))


def dropout_refs():
    torch.manual_seed(777)
    p = make_params()
    V = CFG["vocab_size"]
    idx = torch.randint(0, V, (B, T + 1))
    inputs, targets = idx[:, :-1].contiguous(), idx[:, 1:].contiguous()
    out = {k: v.detach().clone() for k, v in p.items()}
    out["inputs"], out["targets"] = inputs.to(torch.int32), targets.to(torch.int32)
    prob, key = DROPOUT["p"], DROPOUT["key"]
    scale = torch.tensor(1.0, dtype=torch.float32) / (1.0 - torch.tensor(prob, dtype=torch.float32))
    kept = []

    def drop(x, site):
        keep = torch.from_numpy(dropout_keep(x.numel(), prob, key, site).reshape(x.shape))
        kept.append(keep.float().mean().item())
        return (x * scale) * keep.float()

    loss = loss_and_grads(p, forward(p, inputs, drop=drop), targets, out)
    with torch.no_grad():  # the same model without dropout, for contrast
        plain = torch.nn.functional.cross_entropy(forward(p, inputs).view(-1, V), targets.view(-1))
    out["loss_without_dropout"] = plain.reshape(())
    meta = {k: str(v) for k, v in {**CFG, "batch_size": B, "seq_len": T, **DROPOUT}.items()}
    meta["torch"] = torch.__version__
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "dropout_ref.safetensors")
    write_safetensors(path, out, meta)
    print(f"wrote {os.path.normpath(path)}: loss {loss.item():.6f} (without dropout {plain.item():.6f}), "
          f"kept {min(kept):.3f}..{max(kept):.3f} per site")


# ---------------------------------------------------------------------------
# The attention kinds, dense, for attn_refs.safetensors

ACFG = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, vocab_size=64)
KINDS = {  # name: config keys as ./train takes them
    "polynomial": dict(attention="polynomial", degree=4),
    "sketch_p4": dict(attention="polysketch", degree=4, sketch="random", sketch_size=8, attn_block=8, local_exact=0),
    "sketch_p4_local": dict(attention="polysketch", degree=4, sketch="random", sketch_size=8, attn_block=8,
                            local_exact=1),
    "sketch_p8_local": dict(attention="polysketch", degree=8, sketch="random", sketch_size=8, attn_block=8,
                            local_exact=1),
    "learned_local": dict(attention="polysketch", degree=4, sketch="learned", sketch_size=8, attn_block=8,
                          local_exact=1),
}


def attn_params(hs, r):
    """Every attention tensor any kind uses, one value per name: kinds that
    share a name (qk_norm, sketch.0.g1, ...) share its value."""
    a = {}
    for n in ("qk_norm", "q_norm_local", "k_norm_local"):
        a[n + ".weight"] = 1 + torch.randn(hs) * 0.1
        a[n + ".bias"] = torch.randn(hs) * 0.1
    for l in range(2):  # random sketch, levels 0 and 1 (degree 8), N(0, 1), fixed
        for g in (1, 2):
            a[f"sketch.{l}.g{g}"] = torch.randn(hs if l == 0 else r, r)
    for t in (1, 2):  # learned sketch: two towers of two levels
        for l in range(2):
            i = hs if l == 0 else r
            a[f"sketch.t{t}.{l}.ln.weight"] = 1 + torch.randn(i) * 0.1
            a[f"sketch.t{t}.{l}.ln.bias"] = torch.randn(i) * 0.1
            a[f"sketch.t{t}.{l}.w1"] = torch.randn(i, 8 * r) / math.sqrt(i)
            a[f"sketch.t{t}.{l}.w2"] = torch.randn(8 * r, r) / math.sqrt(8 * r)
    return a


def kind_names(k):
    """The attention tensors kind k has, and which of them train."""
    names = ["qk_norm.weight", "qk_norm.bias"] if k["attention"] == "polynomial" or k.get("sketch") == "random" else []
    if k.get("local_exact"):
        names += [f"{n}_local.{w}" for n in ("q_norm", "k_norm") for w in ("weight", "bias")]
    if k.get("sketch") == "random":
        levels = int(math.log2(k["degree"])) - 1
        names += [f"sketch.{l}.g{g}" for l in range(levels) for g in (1, 2)]
    elif k.get("sketch") == "learned":
        names += [f"sketch.t{t}.{l}.{w}" for t in (1, 2) for l in range(2) for w in ("ln.weight", "ln.bias", "w1", "w2")]
    return names


def dense_attention(k, a, q, kk, v):
    """q, kk, v: [B, H, T, hs]; a: this layer's attention tensors by name."""
    hs, T = q.shape[-1], q.shape[-2]
    ln = lambda x, n: torch.nn.functional.layer_norm(x, (x.shape[-1],), a[n + ".weight"], a[n + ".bias"], 1e-5)
    p = k["degree"]
    if k["attention"] == "polynomial":
        W = (ln(q, "qk_norm") @ ln(kk, "qk_norm").transpose(-2, -1)) ** p
    else:
        r = k["sketch_size"]
        if k["sketch"] == "random":  # m(x) = (x G1) o (x G2) / sqrt(r), log2(p) - 1 levels
            def m(x):
                for l in range(int(math.log2(p)) - 1):
                    x = (x @ a[f"sketch.{l}.g1"]) * (x @ a[f"sketch.{l}.g2"]) / math.sqrt(r)
                return x
            qa, kc = m(ln(q, "qk_norm")), m(ln(kk, "qk_norm"))
        else:  # f(x) = sqrt(r) tanh(t1(x) o t2(x) / sqrt(r)), t = two levels of GELU(LN(x) W1) W2
            def tower(x, t):
                for l in range(2):
                    x = ln(x, f"sketch.t{t}.{l}.ln")
                    x = torch.nn.functional.gelu(x @ a[f"sketch.t{t}.{l}.w1"], approximate="tanh")
                    x = x @ a[f"sketch.t{t}.{l}.w2"]
                return x
            f = lambda x: math.sqrt(r) * torch.tanh(tower(x, 1) * tower(x, 2) / math.sqrt(r))
            qa, kc = f(q), f(kk)
        W = (qa @ kc.transpose(-2, -1)) ** 2  # phi(a) . phi(c) = (a . c)^2
        if k["local_exact"]:  # the diagonal blocks exact, with LayerNorms of their own
            blk = torch.arange(T) // k["attn_block"]
            exact = (ln(q, "q_norm_local") @ ln(kk, "k_norm_local").transpose(-2, -1)) ** p
            W = torch.where(blk[:, None] == blk[None, :], exact, W)
    W = W * torch.tril(torch.ones(T, T, dtype=W.dtype))
    return (W @ v) / (1 + W.sum(-1, keepdim=True))


def forward_kind(p, k, idx):
    """forward() with the attention of kind k (no 1/sqrt(hs) scale: the kinds normalise q and k)."""
    return forward(p, idx, lambda a, q, kk, v: dense_attention(k, a, q, kk, v), ACFG)


STEP_KINDS = ("sketch_p8_local", "learned_local")


def adamw_losses(base, k, fixed, inputs, targets):
    """OPT's AdamW steps on one batch, as in main(): weight decay on the 2-D
    tensors, none on vectors; the fixed random sketches neither decay nor
    move, and tensors the kind does not use get no gradient and are skipped."""
    V = ACFG["vocab_size"]
    p = {n: t.detach().double().requires_grad_(n.split(".attn.", 1)[-1] not in fixed) for n, t in base.items()}
    train = [t for t in p.values() if t.requires_grad]
    opt = torch.optim.AdamW([{"params": [t for t in train if t.dim() == 2], "weight_decay": OPT["weight_decay"]},
                             {"params": [t for t in train if t.dim() < 2], "weight_decay": 0.0}],
                            lr=OPT["lr"], betas=(OPT["beta1"], OPT["beta2"]), eps=OPT["eps"])
    losses = []
    for step in range(OPT["steps"] + 1):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(forward_kind(p, k, inputs).reshape(-1, V), targets.reshape(-1))
        losses.append(loss.item())
        if step == OPT["steps"]:
            break
        loss.backward()
        torch.nn.utils.clip_grad_norm_([t for t in train if t.grad is not None], OPT["grad_clip"])
        opt.step()
    return losses, p


def attention_refs():
    torch.manual_seed(4321)
    base = make_params(ACFG)  # float32 values, computed with in float64 (exactly the same numbers)
    hs, V = ACFG["n_embd"] // ACFG["n_head"], ACFG["vocab_size"]
    for i in range(ACFG["n_layer"]):
        for n, t in attn_params(hs, 8).items():
            base[f"transformer.h.{i}.attn.{n}"] = t
    idx = torch.randint(0, V, (B, T + 1))
    inputs, targets = idx[:, :-1].contiguous(), idx[:, 1:].contiguous()
    out = {n: t.detach().float().clone() for n, t in base.items()}
    out["inputs"], out["targets"] = inputs.to(torch.int32), targets.to(torch.int32)
    meta = {k: str(v) for k, v in {**ACFG, "batch_size": B, "seq_len": T}.items()}
    for name, k in KINDS.items():
        p = {n: t.detach().double().requires_grad_() for n, t in base.items()}
        own = kind_names(k)
        fixed = [n for n in own if k.get("sketch") == "random" and n.startswith("sketch.")]
        logits = forward_kind(p, k, inputs)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
        loss.backward()
        out[name + ".loss"] = loss.detach().float().reshape(())
        out[name + ".logits"] = logits.detach().float()
        for n, t in p.items():
            if ".mlp." in n:
                continue  # the MLP's gradients do not pass through attention's backward (test_gpt2's first check)
            sub = n.split(".attn.", 1)[-1] if ".attn." in n else None
            if sub is not None and not n.endswith(("c_attn.weight", "c_attn.bias", "c_proj.weight", "c_proj.bias")):
                if sub not in own or sub in fixed:
                    continue  # another kind's tensor, or a fixed random sketch: no gradient
            out[f"{name}.grad.{n}"] = t.grad.detach().float().clone()
        meta[name] = " ".join(f"{key}={val}" for key, val in k.items())
        print(f"  {name}: loss {loss.item():.6f}")
        if name in STEP_KINDS:  # AdamW steps: which tensors train, and which decay
            losses, after = adamw_losses(base, k, fixed, inputs, targets)
            out[name + ".adamw_losses"] = torch.tensor(losses)
            for n, t in after.items():  # the kind's own tensors after the steps
                if n.split(".attn.", 1)[-1] in own:
                    out[f"{name}.after.{n}"] = t.detach().float().clone()
    meta.update({key: str(val) for key, val in OPT.items()})
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "attn_refs.safetensors")
    write_safetensors(path, out, meta)
    print(f"wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
    attention_refs()
    dropout_refs()
