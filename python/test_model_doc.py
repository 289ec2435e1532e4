"""docs/MODEL.md, re-implemented from its text in NumPy, matches SatrainModel.

Each step below follows a sentence of docs/MODEL.md (interleaved sin/cos table
added after the input projection without scaling, pre-norm layers with
LayerNorm eps 1e-5, the [q | k | v] split of the fused projection, no mask,
erf GELU, last-step pooling, the [horizons, bins] head layout), so a fact
stated wrongly there makes this test fail.
"""

import math
import unittest

import numpy as np
import torch

from satrain_model import SatrainModel


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def erf_gelu(x):
    v = np.vectorize(math.erf)
    return x / 2 * (1 + v(x / math.sqrt(2)))


def doc_forward(sd, x, d, L, nh, H, B):
    b, S, _ = x.shape
    hd = d // nh
    pe = np.zeros((S, d))
    for pos in range(S):
        for i in range(d // 2):
            ang = pos * 10000.0 ** (-2 * i / d)
            pe[pos, 2 * i], pe[pos, 2 * i + 1] = math.sin(ang), math.cos(ang)
    pe = pe.astype(np.float32).astype(np.float64)
    h = x @ sd["input_proj.weight"].T + sd["input_proj.bias"] + pe
    for l in range(L):
        p = "layers.%d." % l
        a = layer_norm(h, sd[p + "norm1.weight"], sd[p + "norm1.bias"])
        qkv = a @ sd[p + "attn.qkv.weight"].T + sd[p + "attn.qkv.bias"]
        o = np.zeros((b, S, d))
        for n in range(nh):
            # feature j of head n of part t is index t*d + n*hd + j
            q = qkv[:, :, 0 * d + n * hd:0 * d + (n + 1) * hd]
            k = qkv[:, :, 1 * d + n * hd:1 * d + (n + 1) * hd]
            v = qkv[:, :, 2 * d + n * hd:2 * d + (n + 1) * hd]
            s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)  # no mask
            s = np.exp(s - s.max(-1, keepdims=True))
            o[:, :, n * hd:(n + 1) * hd] = (s / s.sum(-1, keepdims=True)) @ v
        h = h + o @ sd[p + "attn.out.weight"].T + sd[p + "attn.out.bias"]
        f = layer_norm(h, sd[p + "norm2.weight"], sd[p + "norm2.bias"])
        f = erf_gelu(f @ sd[p + "ffn.fc1.weight"].T + sd[p + "ffn.fc1.bias"])
        h = h + f @ sd[p + "ffn.fc2.weight"].T + sd[p + "ffn.fc2.bias"]
    z = layer_norm(h[:, S - 1, :], sd["final_norm.weight"], sd["final_norm.bias"])
    logits = z @ sd["head.weight"].T + sd["head.bias"]
    return logits.reshape(b, H, B)  # index h*B + bin


class ModelDocTest(unittest.TestCase):
    def test_doc_matches_module(self):
        torch.manual_seed(5)
        F, d, L, nh, H, B, S = 3, 8, 2, 2, 2, 5, 7
        m = SatrainModel(F, hidden_dim=d, num_layers=L, num_heads=nh, num_horizons=H, num_bins=B, dropout=0.0).eval()
        with torch.no_grad():
            for p in m.parameters():  # LayerNorm weights away from 1/0 too
                p.add_(0.1 * torch.randn_like(p))
        sd = {k: v.detach().double().numpy() for k, v in m.state_dict().items()}
        x = torch.randn(2, S, F)
        with torch.no_grad():
            want = m(x).double().numpy()
        got = doc_forward(sd, x.double().numpy(), d, L, nh, H, B)
        # float32 module vs float64 re-implementation: a few float32 eps
        # times the depth of the computation.
        self.assertLess(np.abs(got - want).max() / np.abs(want).max(), 1e-5)


if __name__ == "__main__":
    unittest.main()
