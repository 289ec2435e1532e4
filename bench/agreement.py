"""Agreement between satrain's logits and PyTorch's on the same weights and inputs.

satrain writes (``satrain bench --agreement-dir DIR``): DIR/weights.pt,
DIR/inputs.pt ({"x": float32 [n, s, F]}), DIR/satrain_logits_fp32.f32 and,
with autocast, DIR/satrain_logits_amp.f32. This script runs the PyTorch module
of python/ on the same weights and inputs (float32, and bf16 autocast on CUDA)
and prints the relative errors ||satrain - pytorch|| / ||pytorch|| as JSON.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from satrain_model import load_checkpoint  # noqa: E402


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    model, _ = load_checkpoint(os.path.join(args.dir, "weights.pt"), map_location=dev, dropout=0.0)
    model.eval()
    inputs = torch.load(os.path.join(args.dir, "inputs.pt"), weights_only=True)
    x = inputs["x"].to(dev)
    out = {"device": str(dev), "torch": torch.__version__}
    with torch.no_grad():
        ref32 = model(x).float().cpu().numpy().ravel()
        s32 = np.fromfile(os.path.join(args.dir, "satrain_logits_fp32.f32"), dtype="<f4")
        out["fp32_rel_err"] = rel(s32, ref32)
        amp_path = os.path.join(args.dir, "satrain_logits_amp.f32")
        if os.path.exists(amp_path) and dev.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                refamp = model(x).float().cpu().numpy().ravel()
            samp = np.fromfile(amp_path, dtype="<f4")
            out["bf16_rel_err_vs_pytorch_bf16"] = rel(samp, refamp)
            out["bf16_rel_err_vs_pytorch_fp32"] = rel(samp, ref32)
            out["pytorch_bf16_vs_pytorch_fp32"] = rel(refamp, ref32)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
