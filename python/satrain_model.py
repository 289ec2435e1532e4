"""PyTorch reference implementation of the satrain stock-return transformer.

The module mirrors the model that the Go trainer builds through libtorch:
parameter names (state_dict keys), shapes, forward pass, loss and the
expected-return read-out are identical, so a checkpoint written by
``satrain`` loads here with ``strict=True``.

Usage::

    from satrain_model import load_checkpoint
    model, ckpt = load_checkpoint("best_model_selection_aware.pt")
    logits = model(x)            # x: float32 [batch, seq, num_features]

Written for PyTorch 2.11, the version satrain builds against (attention through
``F.scaled_dot_product_attention``, or the explicit formula with ``set_attention_impl``).
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "SatrainModel",
    "loss_fn",
    "expected_return",
    "load_checkpoint",
    "count_parameters",
    "count_matmul_parameters",
    "forward_flops_per_sequence",
    "sinusoidal_table",
]


CONFIG_KEYS = ("num_features", "hidden_dim", "num_layers", "num_heads",
               "num_horizons", "num_bins", "dropout")


def sinusoidal_table(seq_len, dim):
    """Position table [seq_len, dim] as float32.

    pe[pos, 2i] = sin(pos * 10000^(-2i/dim)), pe[pos, 2i+1] = cos(same),
    evaluated in float64 and rounded once to float32.
    """
    pos = np.arange(seq_len, dtype=np.float64)[:, None]
    even = np.arange(0, dim, 2, dtype=np.float64)          # 2i
    freq = np.power(10000.0, -even / float(dim))            # 10000^(-2i/d)
    ang = pos * freq[None, :]
    pe = np.zeros((seq_len, dim), dtype=np.float64)
    pe[:, 0::2] = np.sin(ang)
    pe[:, 1::2] = np.cos(ang[:, : dim // 2])
    return torch.from_numpy(pe.astype(np.float32))


class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError("hidden_dim %d is not divisible by num_heads %d" % (dim, num_heads))
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        # Switch for tests: False forces the explicit softmax(q k^T / sqrt(hd)) v path.
        self.use_sdpa = True

    def forward(self, x):
        b, s, d = x.shape
        qkv = self.qkv(x).view(b, s, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                     # [b, nh, s, hd]
        if self.use_sdpa:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
            o = torch.matmul(torch.softmax(scores, dim=-1), v)
        o = o.transpose(1, 2).reshape(b, s, d)
        return self.out(o)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))                 # exact (erf) GELU


class Block(nn.Module):
    def __init__(self, dim, num_heads, dropout):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.ffn = FeedForward(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, h):
        h = h + self.drop(self.attn(self.norm1(h)))
        h = h + self.drop(self.ffn(self.norm2(h)))
        return h


class SatrainModel(nn.Module):
    """Encoder-only transformer: [b, s, F] features -> [b, H, B] bin logits."""

    def __init__(self, num_features, hidden_dim=1024, num_layers=16, num_heads=16,
                 num_horizons=4, num_bins=10, dropout=0.15, max_seq_len=2048):
        super().__init__()
        self.config = {
            "num_features": int(num_features), "hidden_dim": int(hidden_dim),
            "num_layers": int(num_layers), "num_heads": int(num_heads),
            "num_horizons": int(num_horizons), "num_bins": int(num_bins),
            "dropout": float(dropout),
        }
        self.num_horizons = int(num_horizons)
        self.num_bins = int(num_bins)
        self.hidden_dim = int(hidden_dim)
        self.input_proj = nn.Linear(num_features, hidden_dim)
        self.layers = nn.ModuleList([Block(hidden_dim, num_heads, dropout) for _ in range(num_layers)])
        self.final_norm = nn.LayerNorm(hidden_dim, eps=1e-5)
        self.head = nn.Linear(hidden_dim, num_horizons * num_bins)
        self.drop = nn.Dropout(dropout)
        # Not part of the state_dict (persistent=False); grown on demand.
        self.register_buffer("pe", sinusoidal_table(max(1, int(max_seq_len)), hidden_dim), persistent=False)

    def set_attention_impl(self, use_sdpa):
        """True: fused SDPA where available; False: explicit softmax math."""
        for layer in self.layers:
            layer.attn.use_sdpa = bool(use_sdpa)

    def forward(self, x):
        b, s, _ = x.shape
        if s > self.pe.shape[0]:
            self.pe = sinusoidal_table(s, self.hidden_dim).to(self.pe.device)
        h = self.drop(self.input_proj(x) + self.pe[:s].to(x.dtype))
        for layer in self.layers:
            h = layer(h)
        z = self.final_norm(h)[:, -1, :]
        return self.head(z).view(b, self.num_horizons, self.num_bins)


def loss_fn(logits, labels, weights=None, label_smoothing=0.0):
    """l_i = mean_h CE(logits[i,h], y[i,h]); loss = sum_i w_i l_i / sum_i w_i."""
    b, nh, nb = logits.shape
    ce = F.cross_entropy(logits.float().reshape(b * nh, nb), labels.reshape(b * nh).long(),
                         reduction="none", label_smoothing=float(label_smoothing))
    per_sample = ce.view(b, nh).mean(dim=1)
    if weights is None:
        return per_sample.mean()
    w = weights.to(per_sample.dtype).reshape(b)
    return (per_sample * w).sum() / w.sum()


def expected_return(logits, bin_centers):
    """[b, H, B] logits, [H, B] bin centers -> [b, H] expected returns."""
    probs = torch.softmax(logits.float(), dim=-1)
    centers = bin_centers.to(device=probs.device, dtype=probs.dtype)
    return (probs * centers.unsqueeze(0)).sum(dim=-1)


def count_parameters(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_matmul_parameters(model):
    """Weights of input_proj, qkv, out, fc1, fc2 and head (no biases / norms)."""
    n = model.input_proj.weight.numel() + model.head.weight.numel()
    for layer in model.layers:
        n += layer.attn.qkv.weight.numel() + layer.attn.out.weight.numel()
        n += layer.ffn.fc1.weight.numel() + layer.ffn.fc2.weight.numel()
    return n


def forward_flops_per_sequence(n_matmul_params, seq_len, hidden_dim, num_layers):
    """Analytic forward FLOPs of one sequence: 2*N*s + 4*s^2*d*L."""
    return 2.0 * n_matmul_params * seq_len + 4.0 * seq_len * seq_len * hidden_dim * num_layers


def expected_parameter_count(num_features, hidden_dim, num_layers, num_horizons, num_bins):
    d = hidden_dim
    per_layer = 12 * d * d + 13 * d
    return (num_features * d + d) + num_layers * per_layer + 2 * d + (num_horizons * num_bins) * (d + 1)


def _as_python(v):
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else v.tolist()
    return v


def _torch_load(path, map_location):
    """torch.load with the safe loader (weights_only=True, PyTorch's default since 2.6): it never runs code
    from the file. satrain's checkpoints hold only dicts, lists, ints, floats, bools, strings and tensors.
    (Files written before satrain moved to libtorch 2.11 hold non-integer numbers as 0-dim float64 tensors;
    config_from_checkpoint reads both.)"""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        if "restore_type_tag" in str(e):
            raise RuntimeError(
                "%s: written by a satrain older than the safe checkpoint format (it holds libtorch "
                "type tags, which the safe loader refuses); resume a run from it with a current "
                "satrain, whose checkpoints are in the safe format" % path) from None
        raise


def config_from_checkpoint(ckpt):
    """Model kwargs from ckpt["config"], filling gaps from weight shapes."""
    cfg = {str(k): _as_python(v) for k, v in dict(ckpt.get("config") or {}).items()}
    sd = ckpt["model"]
    out = {}
    d, nf = sd["input_proj.weight"].shape
    inferred = {
        "num_features": int(nf),
        "hidden_dim": int(d),
        "num_layers": len({k.split(".")[1] for k in sd if k.startswith("layers.")}),
    }
    for k in CONFIG_KEYS:
        if k in cfg:
            out[k] = float(cfg[k]) if k == "dropout" else int(cfg[k])
        elif k in inferred:
            out[k] = inferred[k]
    missing = [k for k in ("num_heads", "num_horizons", "num_bins") if k not in out]
    if "bin_centers" in ckpt and ("num_horizons" in missing or "num_bins" in missing):
        hb = ckpt["bin_centers"].shape
        out.setdefault("num_horizons", int(hb[0]))
        out.setdefault("num_bins", int(hb[1]))
        missing = [k for k in missing if k not in out]
    if missing:
        raise ValueError("checkpoint config lacks %s" % ", ".join(missing))
    out.setdefault("dropout", 0.0)
    if "seq_len" in cfg:
        out["max_seq_len"] = int(cfg["seq_len"])
    return out


def load_checkpoint(path, map_location="cpu", dropout=None):
    """Open a satrain .pt checkpoint -> (SatrainModel in eval mode, checkpoint dict).

    The file is read with torch.load(weights_only=True), which runs no code
    from it. Non-integer numbers in the dict (e.g. ckpt["best_val_loss"],
    ckpt["config"]["dropout"]) are Python floats (0-dim float64 tensors in
    files written before libtorch 2.11: float(v) reads both).

    dropout: override the checkpoint's dropout rate (e.g. 0.0 for parity checks).
    """
    ckpt = _torch_load(path, map_location)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError("%s is not a satrain checkpoint (no 'model' entry)" % path)
    fmt = ckpt.get("format")
    if fmt is not None and fmt != "satrain-checkpoint":
        raise ValueError("%s: unexpected format %r" % (path, fmt))
    kwargs = config_from_checkpoint(ckpt)
    if dropout is not None:
        kwargs["dropout"] = float(dropout)
    model = SatrainModel(**kwargs)
    state = {str(k): v.float() for k, v in dict(ckpt["model"]).items()}
    model.load_state_dict(state, strict=True)
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    return model, ckpt
