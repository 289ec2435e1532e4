"""Tests for the PyTorch reference model (run: python3 -m unittest discover python)."""

import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import satrain_model as sm  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def contract_shapes(d, L, F_, H, B):
    """The parameter list of CONTRACTS.md, in order."""
    out = [("input_proj.weight", [d, F_]), ("input_proj.bias", [d])]
    for i in range(L):
        p = "layers.%d." % i
        out += [
            (p + "norm1.weight", [d]), (p + "norm1.bias", [d]),
            (p + "attn.qkv.weight", [3 * d, d]), (p + "attn.qkv.bias", [3 * d]),
            (p + "attn.out.weight", [d, d]), (p + "attn.out.bias", [d]),
            (p + "norm2.weight", [d]), (p + "norm2.bias", [d]),
            (p + "ffn.fc1.weight", [4 * d, d]), (p + "ffn.fc1.bias", [4 * d]),
            (p + "ffn.fc2.weight", [d, 4 * d]), (p + "ffn.fc2.bias", [d]),
        ]
    out += [("final_norm.weight", [d]), ("final_norm.bias", [d]),
            ("head.weight", [H * B, d]), ("head.bias", [H * B])]
    return out


def functional_forward(sd, x, nh, H, B):
    """Independent float64 forward from the contract text, per-head loops."""
    sd = {k: v.double() for k, v in sd.items()}
    x = x.double()
    b, s, _ = x.shape
    d = sd["input_proj.weight"].shape[0]
    hd = d // nh
    pe = torch.zeros(s, d, dtype=torch.float64)
    for pos in range(s):
        for i in range(0, d, 2):
            a = pos * 10000.0 ** (-i / d)
            pe[pos, i] = math.sin(a)
            if i + 1 < d:
                pe[pos, i + 1] = math.cos(a)
    pe = pe.float().double()   # contract: float64 table cast to float32
    h = x @ sd["input_proj.weight"].T + sd["input_proj.bias"] + pe
    L = len({k.split(".")[1] for k in sd if k.startswith("layers.")})

    def ln(t, n):
        mu = t.mean(-1, keepdim=True)
        var = ((t - mu) ** 2).mean(-1, keepdim=True)
        return (t - mu) / torch.sqrt(var + 1e-5) * sd[n + ".weight"] + sd[n + ".bias"]

    for i in range(L):
        p = "layers.%d." % i
        a = ln(h, p + "norm1")
        W, bias = sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]
        heads = []
        for j in range(nh):
            sl = lambda part: slice(part * d + j * hd, part * d + (j + 1) * hd)  # noqa: E731
            q = a @ W[sl(0)].T + bias[sl(0)]
            k = a @ W[sl(1)].T + bias[sl(1)]
            v = a @ W[sl(2)].T + bias[sl(2)]
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
            heads.append(att @ v)
        o = torch.cat(heads, dim=-1)
        h = h + o @ sd[p + "attn.out.weight"].T + sd[p + "attn.out.bias"]
        f = ln(h, p + "norm2") @ sd[p + "ffn.fc1.weight"].T + sd[p + "ffn.fc1.bias"]
        f = 0.5 * f * (1.0 + torch.erf(f / math.sqrt(2.0)))
        h = h + f @ sd[p + "ffn.fc2.weight"].T + sd[p + "ffn.fc2.bias"]
    z = ln(h, "final_norm")[:, -1, :]
    return (z @ sd["head.weight"].T + sd["head.bias"]).view(b, H, B)


# Unit roundoff of float32, u = 2^-24. A float32 dot product of length n is
# exact to about n*u of the sum of absolute products whatever the summation
# order (Higham, Accuracy and Stability of Numerical Algorithms, 3.1); errors
# of a chain of such reductions add to first order.
U32 = 2.0 ** -24


def forward_rounding_terms(cfg, seq_len):
    """Reductions on the forward pass's longest path (as model/modeltest/tolerance.go):
    input_proj (F); per layer 2 LayerNorms (2d each), qkv (d), scores (d/nh),
    softmax and attention*v (s each), out (d), fc1 (d), fc2 (4d); final
    LayerNorm (2d) and head (d)."""
    d, s = cfg["hidden_dim"], seq_len
    per_layer = 2 * d + d + d // cfg["num_heads"] + 2 * s + d + 2 * d + d + 4 * d
    return cfg["num_features"] + cfg["num_layers"] * per_layer + 2 * d + d


def logit_atol(cfg, seq_len, logits):
    """Bound on |float32 logit - exact logit|: terms * u * max(|logit|, 1)."""
    return forward_rounding_terms(cfg, seq_len) * U32 * max(float(np.abs(np.asarray(logits)).max()), 1.0)


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(num_features=5, hidden_dim=16, num_layers=2, num_heads=4, num_horizons=3, num_bins=6, dropout=0.0)
    cfg.update(kw)
    return sm.SatrainModel(**cfg), cfg


def safe_numbers(v):
    """The file convention of satrain before libtorch 2.11: non-integer numbers as 0-dim float64 tensors
    (PyTorch 1.13's safe loader had no pickled floats). The loader still reads such files."""
    if isinstance(v, float):
        return torch.tensor(v, dtype=torch.float64)
    if isinstance(v, dict):
        return {k: safe_numbers(x) for k, x in v.items()}
    return v


def make_checkpoint(path, model, cfg, seq_len, centers, legacy=False):
    ck = {
        "format": "satrain-checkpoint", "version": 1, "kind": "selection_aware",
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "config": dict(cfg, seq_len=seq_len, strategy="selection_aware"),
        "iteration": 3, "bin_centers": centers, "best_val_loss": 2.25,
    }
    torch.save(safe_numbers(ck) if legacy else ck, path)


class ModelTest(unittest.TestCase):
    def test_state_dict_matches_contract(self):
        m, cfg = tiny_model(num_layers=3)
        got = [(k, list(v.shape)) for k, v in m.state_dict().items()]
        self.assertEqual(got, contract_shapes(16, 3, 5, 3, 6))
        self.assertNotIn("pe", m.state_dict())
        # parameters and state_dict are the same list (no persistent buffers)
        self.assertEqual([n for n, _ in m.named_parameters()], [k for k, _ in got])

    def test_parameter_count(self):
        m, _ = tiny_model()
        want = sum(int(np.prod(s)) for _, s in contract_shapes(16, 2, 5, 3, 6))
        self.assertEqual(sm.count_parameters(m), want)
        self.assertEqual(sm.expected_parameter_count(5, 16, 2, 3, 6), want)
        # default model: d=1024, L=16, F=16, H=4, B=10
        self.assertEqual(sm.expected_parameter_count(16, 1024, 16, 4, 10), 201600040)
        d, L = 1024, 16
        n_mm = 16 * d + L * 12 * d * d + 40 * d
        self.assertEqual(n_mm, 201383936)

    def test_output_shape_and_dtype(self):
        m, _ = tiny_model()
        m.eval()
        out = m(torch.randn(4, 7, 5))
        self.assertEqual(list(out.shape), [4, 3, 6])
        self.assertEqual(out.dtype, torch.float32)
        # longer than the prebuilt position table
        m2, _ = tiny_model(max_seq_len=4)
        m2.load_state_dict(m.state_dict())
        m2.eval()
        x = torch.randn(2, 9, 5)
        torch.testing.assert_close(m2(x), m(x))

    def test_forward_matches_contract_math(self):
        m, cfg = tiny_model(seed=1)
        m.eval()
        x = torch.randn(3, 11, 5)
        with torch.no_grad():
            got = m(x).double()
        want = functional_forward(m.state_dict(), x, cfg["num_heads"], 3, 6)
        torch.testing.assert_close(got, want, rtol=0, atol=logit_atol(cfg, 11, want))

    def test_position_table(self):
        pe = sm.sinusoidal_table(50, 8)
        self.assertEqual(pe.dtype, torch.float32)
        self.assertEqual(float(pe[0, 0]), 0.0)
        self.assertEqual(float(pe[0, 1]), 1.0)
        self.assertEqual(float(pe[7, 2]), np.float32(math.sin(7 * 10000.0 ** (-2 / 8))))
        self.assertEqual(float(pe[49, 7]), np.float32(math.cos(49 * 10000.0 ** (-6 / 8))))

    def test_loss_hand_computed(self):
        logits = torch.tensor([[[1.0, 2.0, 0.0], [0.5, 0.5, 0.5]],
                               [[0.0, 0.0, 3.0], [2.0, -1.0, 0.0]]])
        y = torch.tensor([[1, 0], [2, 1]])
        w = torch.tensor([1.0, 3.0])

        def ce(z, t, ls):
            lse = math.log(sum(math.exp(v) for v in z))
            nll = lse - z[t]
            smooth = lse - sum(z) / len(z)
            return (1 - ls) * nll + ls * smooth

        for ls in (0.0, 0.1):
            l0 = (ce([1, 2, 0], 1, ls) + ce([0.5, 0.5, 0.5], 0, ls)) / 2
            l1 = (ce([0, 0, 3], 2, ls) + ce([2, -1, 0], 1, ls)) / 2
            self.assertAlmostEqual(sm.loss_fn(logits, y, label_smoothing=ls).item(), (l0 + l1) / 2, places=5)
            self.assertAlmostEqual(sm.loss_fn(logits, y, w, label_smoothing=ls).item(),
                                   (1 * l0 + 3 * l1) / 4, places=5)

    def test_expected_return_hand_computed(self):
        logits = torch.tensor([[[0.0, math.log(3.0)], [1.0, 1.0]]])
        centers = torch.tensor([[-0.02, 0.04], [0.1, 0.3]])
        er = sm.expected_return(logits, centers)
        self.assertEqual(list(er.shape), [1, 2])
        self.assertAlmostEqual(er[0, 0].item(), 0.25 * -0.02 + 0.75 * 0.04, places=6)
        self.assertAlmostEqual(er[0, 1].item(), 0.2, places=6)

    def test_sdpa_matches_explicit(self):
        m, _ = tiny_model(seed=2)
        m.eval()
        x = torch.randn(2, 13, 5)
        with torch.no_grad():
            m.set_attention_impl(True)
            a = m(x)
            m.set_attention_impl(False)
            b = m(x)
        # two float32 evaluations: each within the rounding bound of the exact value
        torch.testing.assert_close(a, b, rtol=0, atol=2 * logit_atol(m.config, 13, b))

    def test_load_checkpoint_roundtrip(self):
        # Today's files (plain floats) and those written before libtorch 2.11 (0-dim float64 tensors).
        for legacy in (False, True):
            with self.subTest(legacy=legacy):
                m, cfg = tiny_model(seed=3, dropout=0.15)
                centers = torch.linspace(-0.05, 0.05, 18).view(3, 6)
                with tempfile.TemporaryDirectory() as td:
                    p = os.path.join(td, "c.pt")
                    make_checkpoint(p, m, cfg, 9, centers, legacy=legacy)
                    m2, ck = sm.load_checkpoint(p)
                self.assertFalse(m2.training)
                self.assertEqual(m2.config, cfg)
                self.assertEqual(ck["kind"], "selection_aware")
                self.assertEqual(float(ck["best_val_loss"]), 2.25)
                m.eval()
                x = torch.randn(2, 9, 5)
                torch.testing.assert_close(m2(x), m(x), rtol=0, atol=0)


class SafeLoadTest(unittest.TestCase):
    """Checkpoints open with torch.load(weights_only=True), which runs no code."""

    def test_satrain_written_checkpoint(self):
        # testdata/tiny_checkpoint.pt: written by satrain's SaveCheckpoint (Go)
        # for a 1-layer, d=8 model with 3 features, 2 horizons, 3 bins.
        path = os.path.join(HERE, "testdata", "tiny_checkpoint.pt")
        ck = torch.load(path, weights_only=True)
        self.assertEqual(ck["format"], "satrain-checkpoint")
        self.assertEqual(float(ck["config"]["dropout"]), 0.1)
        self.assertEqual(ck["config"]["hidden_dim"], 8)
        m, ck2 = sm.load_checkpoint(path)
        self.assertFalse(m.training)
        self.assertEqual(m.config["dropout"], 0.1)
        self.assertEqual(list(m(torch.randn(2, 5, 3)).shape), [2, 2, 3])
        self.assertEqual(float(ck2["best_val_loss"]), 1.0986)

    def test_refuses_code(self):
        ran = []

        class Evil:
            def __reduce__(self):
                return (ran.append, ("ran",))

        with tempfile.TemporaryDirectory() as td:
            p = os.path.join(td, "evil.pt")
            torch.save({"model": Evil()}, p)
            with self.assertRaises(Exception):
                sm.load_checkpoint(p)
        self.assertEqual(ran, [])

    def test_tagged_file_names_the_cause(self):
        # torch/testdata/typed_dict_v1.pt: written by an earlier satrain's
        # shim with libtorch's type tags.
        path = os.path.join(HERE, "..", "torch", "testdata", "typed_dict_v1.pt")
        with self.assertRaises(RuntimeError) as cm:
            sm.load_checkpoint(path)
        self.assertIn("type tags", str(cm.exception))


class ParityScriptTest(unittest.TestCase):
    def test_parity_end_to_end(self):
        m, cfg = tiny_model(seed=4, dropout=0.3)   # parity must force dropout 0
        centers = torch.linspace(-0.05, 0.05, 18).view(3, 6)
        g = torch.Generator().manual_seed(5)
        x = torch.randn(4, 7, 5, generator=g)
        y = torch.randint(0, 6, (4, 3), generator=g)
        w = torch.rand(4, generator=g) + 0.5
        lr, wd, max_norm, ls = 1e-2, 0.01, 0.5, 0.1
        with tempfile.TemporaryDirectory() as td:
            ckp, inp, out = (os.path.join(td, n) for n in ("c.pt", "i.pt", "out"))
            make_checkpoint(ckp, m, cfg, 7, centers)
            torch.save(safe_numbers({"x": x, "y": y, "w": w, "lr": lr, "weight_decay": wd,
                                     "max_norm": max_norm, "label_smoothing": ls}), inp)
            r = subprocess.run([sys.executable, os.path.join(HERE, "parity.py"), "--checkpoint", ckp,
                                "--inputs", inp, "--out", out, "--dump-grads"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            rd = lambda n: np.fromfile(os.path.join(out, n), dtype="<f4")  # noqa: E731
            logits, er, loss, gn, params, grads, clipped = (rd(n) for n in (
                "logits.f32", "expected.f32", "loss.f32", "grad_norm.f32", "params.f32", "grads.f32",
                "clipped_grads.f32"))
            with open(os.path.join(out, "manifest.json")) as f:
                man = json.load(f)
            # missing checkpoint -> clear error, non-zero exit
            bad = subprocess.run([sys.executable, os.path.join(HERE, "parity.py"), "--checkpoint",
                                  os.path.join(td, "nope.pt"), "--inputs", inp, "--out", out],
                                 capture_output=True, text=True)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("parity.py: error", bad.stderr)

        self.assertEqual(man["logits_shape"], [4, 3, 6])
        self.assertEqual([n for n, _ in man["params"]], list(m.state_dict().keys()))
        m.eval()
        with torch.no_grad():
            want_logits = functional_forward(m.state_dict(), x, 4, 3, 6)
        # float32 against the float64 reference: the forward rounding bound;
        # expected returns move by at most (max c - min c) * max|dz| (the
        # l1 norm of their gradient in z), the loss by at most 2 * max|dz|.
        atol = logit_atol(cfg, 7, want_logits)
        np.testing.assert_allclose(logits.reshape(4, 3, 6), want_logits.numpy(), rtol=0, atol=atol)
        spread = float(centers.max() - centers.min())
        np.testing.assert_allclose(er.reshape(4, 3), sm.expected_return(want_logits, centers.double()).numpy(),
                                   rtol=0, atol=spread * atol + 16 * U32 * float(centers.abs().max()))
        want_loss = sm.loss_fn(want_logits, y, w, label_smoothing=ls).item()
        self.assertLessEqual(abs(float(loss[0]) - want_loss), 2 * atol + 40 * U32 * want_loss)

        # Clipping: the clipped gradient is g * max_norm / (norm + 1e-6); the
        # norm is a sum of n squares (relative error n*u).
        self.assertEqual(len(grads), len(params))
        self.assertEqual(len(clipped), len(params))
        g64 = grads.astype(np.float64)
        norm = float(np.sqrt(np.sum(g64 ** 2)))
        self.assertLessEqual(abs(float(gn[0]) - norm), len(grads) * U32 * norm)
        self.assertGreater(norm, max_norm)   # make sure clipping is exercised
        coef = max_norm / (norm + 1e-6)
        np.testing.assert_allclose(clipped, g64 * coef, rtol=(len(grads) + 4) * U32, atol=0)

        # One AdamW step by hand, in units of lr: decoupled decay and the
        # first-step bias corrections give
        #   (p1 - p0) / lr = -wd * p0 - g / (|g| + eps)
        # on the clipped gradient g AdamW used. The float32 step rounds
        # p0 * (1 - lr * wd) and the sum (about 2u|p0|/lr) and the ratio
        # (a few u). Comparing weights after Adam with a relative tolerance
        # would be ill-conditioned where g is float noise (the key third of
        # each qkv bias, whose exact gradient is zero).
        gc = clipped.astype(np.float64)
        p0 = torch.cat([p.detach().reshape(-1) for p in m.state_dict().values()]).double().numpy()
        got = (params.astype(np.float64) - p0) / lr
        want = -wd * p0 - gc / (np.abs(gc) + 1e-8)
        bound = U32 * (4 * np.abs(p0) / lr + 8)
        worst = np.max(np.abs(got - want) - bound)
        self.assertLessEqual(worst, 0.0, "AdamW step off the formula by more than its rounding")

    def test_key_bias_gradient_is_zero(self):
        """Softmax is unchanged when one value is added to every key score, so
        the key third of each qkv bias has an exactly zero gradient: in float64
        it is zero to rounding (a sum over batch x positions of terms, each a
        d-length reduction), against the query and value thirds."""
        m, cfg = tiny_model(seed=6)
        m = m.double()
        x = torch.randn(3, 9, 5, dtype=torch.float64)
        y = torch.randint(0, 6, (3, 3))
        sm.loss_fn(m(x), y).backward()
        d = cfg["hidden_dim"]
        for i, layer in enumerate(m.layers):
            g = layer.attn.qkv.bias.grad
            qv = torch.cat([g[:d], g[2 * d:]]).norm().item()
            self.assertGreater(qv, 1e-6)
            self.assertLessEqual(g[d:2 * d].norm().item(), 3 * 9 * d * 2.0 ** -53 * qv, "layer %d" % i)

if __name__ == "__main__":
    unittest.main()
