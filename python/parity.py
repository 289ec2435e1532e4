#!/usr/bin/env python3
"""Reference numbers for the Go <-> PyTorch parity test.

    python3 python/parity.py --checkpoint C.pt --inputs I.pt --out DIR

C.pt: satrain checkpoint (see satrain_model.load_checkpoint).
I.pt: dict {"x": f32 [b,s,F], "y": i64 [b,H], "w": f32 [b] (optional),
            "lr", "weight_decay", "max_norm", "label_smoothing": numbers (floats, or
            0-dim tensors as satrain wrote them before libtorch 2.11)}; read with weights_only=True

Writes (raw little-endian float32, C order):
  DIR/logits.f32     eval-mode logits [b,H,B]
  DIR/expected.f32   expected returns [b,H] using ckpt["bin_centers"]
  DIR/loss.f32       loss before the optimizer step (1 value)
  DIR/grad_norm.f32  total gradient norm returned by clip_grad_norm_ (1 value)
  DIR/params.f32     every parameter after one AdamW step, state_dict order
  DIR/clipped_grads.f32  the gradient the AdamW step used (after clip_grad_norm_), same order
  DIR/grads.f32      (only with --dump-grads) unclipped gradients, same order
  DIR/manifest.json  {"params": [[name, numel], ...], "logits_shape": [...], ...}
Dropout is forced to 0. Any failure exits non-zero with a message on stderr.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from satrain_model import expected_return, load_checkpoint, loss_fn  # noqa: E402


def _load(path):
    # The safe loader: satrain's files hold no code (see satrain_model._torch_load).
    return torch.load(path, map_location="cpu", weights_only=True)


def _scalar(inputs, key, default=None):
    if key not in inputs:
        if default is None:
            raise KeyError("inputs file lacks %r" % key)
        return float(default)
    v = inputs[key]
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError("inputs %r must be a scalar, got shape %s" % (key, list(v.shape)))
        v = v.item()
    return float(v)


def _write_f32(path, t):
    a = np.ascontiguousarray(t.detach().cpu().to(torch.float32).numpy()).astype("<f4", copy=False)
    a.tofile(path)


def run(checkpoint, inputs_path, out_dir, dump_grads=False, threads=1):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, ckpt = load_checkpoint(checkpoint, map_location="cpu", dropout=0.0)
    inputs = _load(inputs_path)
    if not isinstance(inputs, dict):
        raise ValueError("inputs file must hold a dict, got %s" % type(inputs).__name__)
    x = inputs["x"].to(torch.float32)
    y = inputs["y"].to(torch.int64)
    w = inputs.get("w")
    w = None if w is None else w.to(torch.float32)
    lr = _scalar(inputs, "lr")
    wd = _scalar(inputs, "weight_decay")
    max_norm = _scalar(inputs, "max_norm")
    ls = _scalar(inputs, "label_smoothing", 0.0)

    cfg = model.config
    if x.dim() != 3 or x.shape[2] != cfg["num_features"]:
        raise ValueError("x has shape %s, expected [b,s,%d]" % (list(x.shape), cfg["num_features"]))
    if list(y.shape) != [x.shape[0], cfg["num_horizons"]]:
        raise ValueError("y has shape %s, expected [%d,%d]" % (list(y.shape), x.shape[0], cfg["num_horizons"]))
    if "bin_centers" not in ckpt:
        raise KeyError("checkpoint lacks 'bin_centers'")
    centers = ckpt["bin_centers"].to(torch.float32)

    os.makedirs(out_dir, exist_ok=True)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        er = expected_return(logits, centers)
    _write_f32(os.path.join(out_dir, "logits.f32"), logits)
    _write_f32(os.path.join(out_dir, "expected.f32"), er)

    model.train()  # dropout is 0, so this only changes mode flags
    names = list(model.state_dict().keys())
    named = dict(model.named_parameters())
    params = [named[n] for n in names]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    opt.zero_grad()
    loss = loss_fn(model(x), y, w, label_smoothing=ls)
    loss.backward()
    if dump_grads:
        _write_f32(os.path.join(out_dir, "grads.f32"), torch.cat([p.grad.reshape(-1) for p in params]))
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    _write_f32(os.path.join(out_dir, "clipped_grads.f32"), torch.cat([p.grad.reshape(-1) for p in params]))
    opt.step()

    _write_f32(os.path.join(out_dir, "loss.f32"), loss.reshape(1))
    _write_f32(os.path.join(out_dir, "grad_norm.f32"), torch.as_tensor(grad_norm).reshape(1))
    with torch.no_grad():
        _write_f32(os.path.join(out_dir, "params.f32"), torch.cat([p.reshape(-1) for p in params]))
    manifest = {
        "params": [[n, int(named[n].numel())] for n in names],
        "logits_shape": list(logits.shape),
        "expected_shape": list(er.shape),
        "loss": float(loss.item()),
        "grad_norm": float(torch.as_tensor(grad_norm).item()),
        "torch_version": torch.__version__,
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dump-grads", action="store_true", help="also write grads.f32 (before clipping)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        m = run(args.checkpoint, args.inputs, args.out, args.dump_grads, args.threads)
    except Exception as e:  # clear one-line error for the Go test log
        print("parity.py: error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    print("parity.py: loss=%.6f grad_norm=%.6f logits=%s -> %s"
          % (m["loss"], m["grad_norm"], m["logits_shape"], args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
