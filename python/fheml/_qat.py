"""Quantization-aware training for fheml's built-in networks (torch; imported only when a
NeuralNetClassifier/Regressor is fitted).

The network mirrors what fheml's compiler will compute, so that training sees the deployed
model's quantization and the compiled circuit reproduces the trained one:
- inputs: quantized per feature to 8 bits over the training range (as the compiler's input
  quantizer); the first layer's weights are fake-quantized as the compiler does it, on the
  effective weights w * s_f (s_f the feature's step), per output neuron, symmetric;
- hidden layers: weights fake-quantized per output neuron, symmetric, `weight_bits`;
- accumulators: rounded to `rounding_bits` as the compiler rounds them before the lookup:
  each neuron centred on its own running range, one power-of-two step per layer from the
  widest neuron's range;
- activations: relu, clipped to a learned bound alpha (PACT, Choi et al. 2018,
  arXiv:1805.06085) and quantized to `activation_bits` unsigned levels; one alpha per layer, so
  that every neuron of a layer shares the grid the next layer's integer weights multiply.
Rounding passes gradients straight through (the straight-through estimator). Low-bit
training oscillates: with a `score` (the caller's compiled circuit, rated on the calibration
rows), the network is taken at its best of several checkpoints, not at its last epoch.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _fake_quant_symmetric(w: torch.Tensor, bits: int, scale_per_row: torch.Tensor | None = None):
    """Per output row (dim 0), symmetric levels +-(2^(bits-1) - 1)."""
    levels = 2 ** (bits - 1) - 1
    eff = w if scale_per_row is None else w * scale_per_row
    step = eff.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / levels
    q = _round_ste(eff / step).clamp(-levels, levels) * step
    return q if scale_per_row is None else q / scale_per_row


class QuantMLP(nn.Module):
    def __init__(self, n_features: int, hidden: tuple[int, ...], n_outputs: int,
                 activation_bits: int, weight_bits: int, rounding_bits: int,
                 input_step: np.ndarray, input_lo: np.ndarray):
        super().__init__()
        sizes = [n_features, *hidden, n_outputs]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.alpha = nn.Parameter(torch.full((len(hidden),), 6.0))
        self.activation_bits = activation_bits
        self.weight_bits = weight_bits
        self.rounding_bits = rounding_bits
        self.register_buffer("input_step", torch.tensor(input_step, dtype=torch.float32)[None, :])
        self.register_buffer("input_lo", torch.tensor(input_lo, dtype=torch.float32)[None, :])
        # Per hidden layer: each neuron's running accumulator range (integer units).
        self.acc_lo = [torch.zeros(h) for h in hidden]
        self.acc_hi = [torch.zeros(h) for h in hidden]
        self.seen = [False] * len(hidden)
        self.quantize = False

    def weight(self, i: int) -> torch.Tensor:
        w = self.layers[i].weight
        if not self.quantize:
            return w
        return _fake_quant_symmetric(w, self.weight_bits, self.input_step if i == 0 else None)

    def _weight_unit(self, i: int) -> torch.Tensor:
        """Per output neuron: the float value of one unit of the integer accumulator."""
        levels = 2 ** (self.weight_bits - 1) - 1
        w = self.layers[i].weight.detach()
        eff = w * self.input_step if i == 0 else w
        unit = eff.abs().amax(dim=1).clamp_min(1e-12) / levels
        if i > 0:
            alpha = float(self.alpha[i - 1].detach().abs() + 1e-3)
            unit = unit * alpha / (2 ** self.activation_bits - 1)
        return unit

    def _round_accumulator(self, i: int, z: torch.Tensor) -> torch.Tensor:
        """The compiler's rounding: the integer accumulator (inputs and weights on their grids,
        the bias and the inputs' zero points folded in, as the compiled circuit's linear node
        holds them: z in units of the neuron's weight step), each neuron centred on its own
        calibrated range, keeps its top `rounding_bits` over the widest neuron's range: a
        power-of-two step shared by the layer."""
        unit = self._weight_unit(i)
        acc = z.detach() / unit
        if self.training:
            lo, hi = acc.amin(dim=0), acc.amax(dim=0)
            if self.acc_lo[i].shape != lo.shape or not bool(self.seen[i]):
                self.acc_lo[i], self.acc_hi[i] = lo, hi
                self.seen[i] = True
            else:  # running extremes, slowly forgetting the early epochs
                self.acc_lo[i] = torch.minimum(self.acc_lo[i], lo) * 0.99 + 0.01 * lo
                self.acc_hi[i] = torch.maximum(self.acc_hi[i], hi) * 0.99 + 0.01 * hi
        lo, hi = self.acc_lo[i], self.acc_hi[i]
        width = float((hi - lo).max()) * 1.1
        p = self.rounding_bits
        shift = 0
        while width >= 2.0 ** (p + shift) - 2.0 ** shift:
            shift += 1
        step = 2.0 ** shift
        origin = torch.floor((lo + hi) / 2) - width / 2
        rounded = torch.round((acc - origin) / step) * step + origin
        return z + ((rounded - acc) * unit).detach()

    def _activation(self, i: int, z: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha[i].abs() + 1e-3
        levels = 2 ** self.activation_bits - 1
        y = torch.minimum(torch.relu(z), alpha)  # PACT: gradient to alpha where clipped
        return _round_ste(y / alpha * levels) * (alpha / levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantize:
            for i, layer in enumerate(self.layers):
                x = layer(x)
                if i + 1 < len(self.layers):
                    x = torch.relu(x)
            return x
        for i, layer in enumerate(self.layers):
            z = nn.functional.linear(x, self.weight(i), layer.bias)
            if i + 1 == len(self.layers):
                return z
            z = self._round_accumulator(i, z)
            x = self._activation(i, z)
        return x

    def start_quantization(self, X: torch.Tensor) -> None:
        """Alpha of each layer from its float activations (their 99.9th percentile)."""
        with torch.no_grad():
            h = X
            for i, layer in enumerate(self.layers[:-1]):
                h = torch.relu(layer(h))
                self.alpha[i] = torch.quantile(h.flatten(), 0.999).clamp_min(1e-2)
        self.quantize = True


class Deployed(nn.Module):
    """The trained network as the compiler should see it: rounded weights, relu -> clip ->
    round to the activation grid (one fused lookup per neuron)."""

    def __init__(self, net: QuantMLP):
        super().__init__()
        self.linears = nn.ModuleList()
        with torch.no_grad():
            for i, layer in enumerate(net.layers):
                lin = nn.Linear(layer.in_features, layer.out_features)
                lin.weight.copy_(net.weight(i))
                lin.bias.copy_(layer.bias)
                self.linears.append(lin)
        self.alpha = [float(a.abs() + 1e-3) for a in net.alpha.detach()]
        self.levels = 2 ** net.activation_bits - 1

    def forward(self, x):
        for i, lin in enumerate(self.linears):
            x = lin(x)
            if i + 1 < len(self.linears):
                a = self.alpha[i]
                x = torch.round(torch.clamp(x, 0.0, a) * (self.levels / a)) * (a / self.levels)
        return x


def train(X: np.ndarray, y: np.ndarray, hidden, n_outputs: int, classification: bool,
          activation_bits: int, weight_bits: int, rounding_bits: int, max_epochs: int,
          lr: float, batch_size: int, weight_decay: float, random_state,
          score=None, checkpoints: int = 8) -> tuple[Deployed, float]:
    """The trained network as the compiler should see it, and its score (-inf without one).
    score(deployed) -> float, when
    given, rates a candidate by its compiled circuit (higher is better): the network is then
    taken at the best of `checkpoints` points spread over the quantized epochs, not the last
    (low-bit training oscillates: its last epoch is often not its best, and the circuit's
    rounding is rated as it will run)."""
    seed = 0 if random_state is None else int(random_state)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    lo, hi = X.min(axis=0), X.max(axis=0)
    spread = np.where(hi > lo, hi - lo, (hi - lo).max() if (hi > lo).any() else 1.0)
    input_step = spread / 255.0
    net = QuantMLP(X.shape[1], tuple(hidden), n_outputs, activation_bits, weight_bits,
                   rounding_bits, input_step, lo)
    Xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long if classification else torch.float32)
    if not classification and yt.ndim == 1:
        yt = yt[:, None]
    loss_fn = nn.functional.cross_entropy if classification else nn.functional.mse_loss
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = max(1, max_epochs // 4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max_epochs)
    n = len(Xt)
    quantized = max_epochs - min(warmup, max_epochs - 1)
    marks = {max_epochs - 1 - (quantized - 1) * k // max(1, checkpoints - 1)
             for k in range(checkpoints)} if score is not None else set()
    best, best_score = None, -np.inf
    for epoch in range(max_epochs):
        if epoch == min(warmup, max_epochs - 1):
            net.start_quantization(Xt)
        net.train()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            optimizer.zero_grad()
            loss_fn(net(Xt[idx]), yt[idx]).backward()
            optimizer.step()
        schedule.step()
        if epoch in marks:
            net.eval()
            candidate = Deployed(net)
            rating = float(score(candidate))
            if rating > best_score:  # the earlier of equals: fewer epochs, same circuit score
                best, best_score = candidate, rating
    net.eval()
    return (best, best_score) if best is not None else (Deployed(net), -np.inf)
