#!/usr/bin/python3
"""Checks Hugging Face interop against the real transformers library, both ways.
Needs torch, transformers and safetensors (not Debian's python3-torch alone),
so it runs on a machine that has them; what it makes is committed and the C
tests read it without them.

  make DIR REF      GPT2LMHeadModel.save_pretrained(DIR) of a tiny random
                    GPT-2 (biases and LayerNorms random too), and REF: a
                    safetensors file with an input batch and transformers'
                    logits for it. tests/test_checkpoint.c loads DIR with
                    init_from=hf: code and checks the logits.
                        scripts/hf_interop.py make tests/data/hf_real tests/data/hf_real_ref.safetensors

  check CKPT DUMP TOKENS
                    Loads our checkpoint CKPT (a step directory of a softmax
                    run) with GPT2LMHeadModel.from_pretrained, fails on any
                    missing, unexpected or mis-shaped tensor, then runs the
                    batch in TOKENS (B*T+1 ids, as our loader cuts them) and
                    compares loss, logits and every parameter gradient with
                    DUMP, which `./train ... dump_step=DUMP init_from=CKPT`
                    wrote from the same batch (shuffle=0). As run for the
                    README's figures:
      S="n_layer=2 n_head=4 n_embd=64 block_size=128 eval_interval=0 sample_tokens=0"
      ./train config/default.cfg $S seq_len=128 batch_size=8 max_steps=300 \
          warmup_steps=30 lr=3e-3 min_lr=3e-4 out_dir=/tmp/hfsmall resume=never
      ./train config/default.cfg $S seq_len=32 batch_size=2 max_steps=1 shuffle=0 \
          init_from=/tmp/hfsmall out_dir=/tmp/hfdump resume=never dump_step=dump.safetensors
      /usr/bin/python3 -c "import numpy as np; print(*np.fromfile('shards/moby/train_000000.bin',
          dtype=np.uint16, offset=1024)[:65])" > tokens.txt
      scripts/hf_interop.py check /tmp/hfsmall/step_00000300 dump.safetensors tokens.txt
"""
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file


def make(out_dir, ref_path):
    torch.manual_seed(4321)
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=32, vocab_size=192,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.copy_(torch.randn_like(p) * 0.1)
            elif "ln_" in name:
                p.copy_(1 + torch.randn_like(p) * 0.1)
    model.save_pretrained(out_dir, safe_serialization=True)
    inputs = torch.randint(0, cfg.vocab_size, (2, 24), dtype=torch.int32)
    with torch.no_grad():
        logits = model(inputs.long()).logits.float().contiguous()
    save_file({"inputs": inputs, "logits": logits}, ref_path,
              metadata={"transformers": transformers.__version__, "torch": torch.__version__})
    print(f"wrote {out_dir} and {ref_path} (transformers {transformers.__version__}, torch {torch.__version__})")


def check(ckpt, dump_path, tokens_path):
    model, info = transformers.GPT2LMHeadModel.from_pretrained(ckpt, output_loading_info=True)
    # lm_head is tied to wte (our checkpoint leaves it out, as save_pretrained
    # does); any other missing, unexpected or mis-shaped tensor is a layout error.
    info["missing_keys"] = [k for k in info.get("missing_keys", []) if k != "lm_head.weight"]
    bad = {k: v for k, v in info.items() if v}
    if bad:
        sys.exit(f"{ckpt}: transformers reports {bad}")
    model.eval()
    dump = load_file(dump_path)
    B, T, V = dump["logits"].shape
    toks = torch.tensor([int(x) for x in open(tokens_path).read().split()], dtype=torch.long)
    assert toks.numel() >= B * T + 1, "need B*T+1 tokens"
    x = toks[: B * T].view(B, T)
    y = toks[1 : B * T + 1].view(B, T)
    out = model(x, labels=None)
    loss = torch.nn.functional.cross_entropy(out.logits.view(-1, V), y.reshape(-1))
    loss.backward()

    def rel(a, b):
        return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()

    worst = ("", 0.0)
    for name, p in model.named_parameters():
        key = "grad." + name
        if key not in dump:
            sys.exit(f"{dump_path}: no {key}")
        r = rel(dump[key], p.grad)
        if r > worst[1]:
            worst = (name, r)
    lr = rel(dump["logits"], out.logits.detach())
    print(f"transformers {transformers.__version__} loaded {ckpt}: no missing or unexpected tensors")
    print(f"loss: ours {dump['loss'].item():.6f}, transformers {loss.item():.6f}")
    print(f"logits: max relative difference {lr:.2e}")
    print(f"gradients: worst relative difference {worst[1]:.2e} ({worst[0]})")
    ok = abs(dump["loss"].item() - loss.item()) < 1e-5 * abs(loss.item()) and lr < 1e-5 and worst[1] < 1e-3
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
