"""Quantization-aware training for fheml's built-in networks (torch; imported only when a
NeuralNetClassifier/Regressor is fitted).

The network mirrors what fheml's compiler will compute, so that training sees the deployed
model's quantization and the compiled circuit reproduces the trained one:
- inputs: quantized per feature to 8 bits over the calibration rows' range (as the compiler's
  input quantizer); the first layer's weights are fake-quantized as the compiler does it, on the
  effective weights w * s_f (s_f the feature's step), per output neuron, symmetric;
- hidden layers: weights fake-quantized per output neuron, symmetric, `weight_bits`;
- accumulators: rounded to `rounding_bits` exactly as the compiler rounds them before the
  lookup (quant/quantize_lookups.cpp, approximate rounding): on the integer accumulator the
  circuit holds (inputs and weights on their grids; the bias and the inputs' zero points are
  not in it), each neuron centred on its own range over the calibration rows, one window and
  one power-of-two step per layer, the same margin, offset and round-half-up; recomputed from
  the calibration rows every epoch, so that training sees the rounding grid (its phase as well
  as its step) the compiled circuit will use;
- activations: relu, clipped to a learned bound alpha (PACT, Choi et al. 2018,
  arXiv:1805.06085) and quantized to `activation_bits` unsigned levels; one alpha per layer, so
  that every neuron of a layer shares the grid the next layer's integer weights multiply.
Rounding passes gradients straight through (the straight-through estimator). Low-bit
training oscillates: with a `score` (the caller's compiled circuit, rated on the calibration
rows), the network is taken at its best of several checkpoints, not at its last epoch.

Schedule (classifiers): the same network is first trained in float (the whole schedule, at
TEACHER_LR times the rate); the quantized network starts from its weights and is fine-tuned at
FINE_TUNE_LR times the rate with the float network as teacher (knowledge distillation, Hinton
et al. 2015, arXiv:1503.02531; for quantized students Mishra & Marr 2017, arXiv:1711.05852):
the loss mixes the labels with the teacher's softened outputs. Measured on breast cancer over
5 splits x 4 seeds (bench/README.md "Networks"): QAT's mean test accuracy 96.17% -> 96.70%
(float, same schedule: 97.02%); on digits 96.91% -> 96.72% over 3 x 3 (float 96.94%), within
that measurement's noise.
Regressors keep the former schedule (float for a quarter of the epochs, then QAT on the targets
alone): a float teacher lowered their R2 (see `train`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


# The schedule above (measured against the former one: float warm-up for a quarter of the
# epochs, then QAT at the full rate on the labels alone; bench/README.md "Networks").
DISTILLATION = 0.8  # weight of the teacher's term in the loss (the labels': 1 - DISTILLATION)
TEMPERATURE = 2.0  # softening of both output distributions (classification)
FINE_TUNE_LR = 0.3  # the quantized phase's learning rate, relative to `lr`
TEACHER_LR = 0.3  # the float teacher's learning rate, relative to `lr`


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _fake_quant_symmetric(w: torch.Tensor, bits: int, scale_per_row: torch.Tensor | None = None):
    """Per output row (dim 0), symmetric levels +-(2^(bits-1) - 1)."""
    levels = 2 ** (bits - 1) - 1
    eff = w if scale_per_row is None else w * scale_per_row
    step = eff.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / levels
    q = _round_ste(eff / step).clamp(-levels, levels) * step
    return q if scale_per_row is None else q / scale_per_row


def _bits(lo: int, hi: int) -> int:
    """ir::IntRange::bits: the bits of hi - lo (1 for a single value)."""
    return max(1, int(hi - lo).bit_length())


def _compiler_rounding(lo: np.ndarray, hi: np.ndarray, worst_lo: np.ndarray,
                       worst_hi: np.ndarray, p: int, max_lookup_bits: int,
                       margin: float = 0.05):
    """The compiler's choice for a lookup on a layer's integer accumulators whose calibrated
    per-neuron ranges are [lo, hi] and worst cases [worst_lo, worst_hi]
    (quant/quantize_lookups.cpp, build_lookup, approximate rounding to p bits): None when the
    window fits max_lookup_bits (no rounding), else (centres, offset, shift). Mirrors the
    calibration margin, the window's clamp to the worst case (taken whole when it needs no more
    bits), the centring (done when it lowers the window's bits) and the shift and offset rules."""
    lo, hi = lo.astype(np.int64), hi.astype(np.int64)
    worst_lo, worst_hi = worst_lo.astype(np.int64), worst_hi.astype(np.int64)

    def window(a: int, b: int, wa: int, wb: int) -> tuple[int, int]:
        m = int(np.ceil(margin * float(b - a)))
        a, b = max(wa, a - m), min(wb, b + m)
        return (wa, wb) if _bits(wa, wb) <= _bits(a, b) else (a, b)

    rl, rh = window(int(lo.min()), int(hi.max()), int(worst_lo.min()), int(worst_hi.max()))
    if _bits(rl, rh) <= max_lookup_bits:
        return None
    centre = np.zeros_like(lo)
    widest = int((hi - lo).max())
    centred_width = int(np.ceil(widest * (1.0 + 2.0 * margin))) + 2
    if len(lo) > 1 and _bits(0, centred_width) < _bits(rl, rh):
        centre = lo + (hi - lo) // 2
        rl, rh = window(int((lo - centre).min()), int((hi - centre).max()),
                        int((worst_lo - centre).min()), int((worst_hi - centre).max()))
    bits = _bits(rl, rh)
    if bits <= max_lookup_bits:  # centred, the lookup reads the whole window: no rounding
        return None
    shift = bits - p
    width = rh - rl
    while width >= 2 ** (p + shift) - 2 ** shift:
        shift += 1
    slack = 2 ** (p + shift) - 2 ** shift - 1 - width
    return centre, -rl + slack // 2, shift


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
        # Per hidden layer: the compiler's rounding (centres, offset, shift), or None (exact).
        self.rounding: list = [None] * len(hidden)
        self.max_lookup_bits = 8
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

    def _integer_accumulator(self, i: int, z: torch.Tensor) -> torch.Tensor:
        """z's integer accumulator as the circuit's linear node holds it: in units of the neuron's
        weight step, without the float bias (the layer's bias, and on the first layer the inputs'
        zero points w . lo, which the compiler folds into the lookup's function)."""
        constant = self.layers[i].bias
        if i == 0:
            constant = constant + self.input_lo @ self.weight(0).T
        return (z - constant).detach() / self._weight_unit(i)

    def _quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The client's input quantizer: 8 bits per feature over the calibration range."""
        q = torch.clamp(torch.round((x - self.input_lo) / self.input_step), 0, 255)
        return self.input_lo + q * self.input_step

    def calibrate_rounding(self, X: torch.Tensor) -> None:
        """Each layer's rounding as the compiler will choose it for the current weights, from
        the integer accumulators of the calibration rows X (layer after layer, each seeing the
        previous layers' rounding)."""
        with torch.no_grad():
            x = self._quantize_input(X)
            for i in range(len(self.layers) - 1):
                z = nn.functional.linear(x, self.weight(i), self.layers[i].bias)
                acc = torch.round(self._integer_accumulator(i, z)).to(torch.float64)
                # The worst case of each neuron's integer accumulator: its integer weights over
                # the inputs' integer range (8-bit inputs, activation levels).
                source_step = (self.input_step if i == 0 else
                               (self.alpha[i - 1].abs() + 1e-3) / (2 ** self.activation_bits - 1))
                k = torch.round(self.weight(i) * source_step / self._weight_unit(i)[:, None])
                top = 255.0 if i == 0 else float(2 ** self.activation_bits - 1)
                worst_lo = (k.clamp(max=0) * top).sum(dim=1).to(torch.float64).numpy()
                worst_hi = (k.clamp(min=0) * top).sum(dim=1).to(torch.float64).numpy()
                self.rounding[i] = _compiler_rounding(acc.amin(dim=0).numpy(),
                                                      acc.amax(dim=0).numpy(), worst_lo,
                                                      worst_hi, self.rounding_bits,
                                                      self.max_lookup_bits)
                x = self._activation(i, self._round_accumulator(i, z))

    def _round_accumulator(self, i: int, z: torch.Tensor) -> torch.Tensor:
        """The compiler's approximate rounding of the accumulator (straight-through): m =
        floor((acc - c + offset) / 2^shift + 1/2), read as m 2^shift - offset + c."""
        if self.rounding[i] is None:
            return z
        centre, offset, shift = self.rounding[i]
        acc = self._integer_accumulator(i, z)
        step = 2.0 ** shift
        c = torch.as_tensor(centre, dtype=acc.dtype)
        rounded = torch.floor((torch.round(acc) - c + offset) / step + 0.5) * step - offset + c
        return z + ((rounded - acc) * self._weight_unit(i)).detach()

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
        x = self._quantize_input(x)
        for i, layer in enumerate(self.layers):
            z = nn.functional.linear(x, self.weight(i), layer.bias)
            if i + 1 == len(self.layers):
                return z
            x = self._activation(i, self._round_accumulator(i, z))
        return x

    def start_quantization(self, X: torch.Tensor, calibration: torch.Tensor) -> None:
        """Alpha of each layer from its float activations (their 99.9th percentile), then the
        compiler's rounding on the calibration rows."""
        with torch.no_grad():
            h = X
            for i, layer in enumerate(self.layers[:-1]):
                h = torch.relu(layer(h))
                self.alpha[i] = torch.quantile(h.flatten(), 0.999).clamp_min(1e-2)
        self.quantize = True
        self.calibrate_rounding(calibration)


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
          score=None, checkpoints: int = 8, calibration: np.ndarray | None = None,
          max_lookup_bits: int = 8, fake_quantization: bool = True) -> tuple[nn.Module, float]:
    """The trained network as the compiler should see it, and its score (-inf without one).
    fake_quantization=False trains the same network in float with the same schedule and returns
    it as it is (a float torch module: the reference QAT is measured against, and the teacher
    and starting point of the quantized training).
    `calibration`: the rows the circuit will be compiled on (default X): the input quantizers'
    ranges and the accumulators' rounding come from them, as in the compiler.
    score(deployed) -> float, when
    given, rates a candidate by its compiled circuit (higher is better): the network is then
    taken at the best of `checkpoints` points spread over the quantized epochs, not the last
    (low-bit training oscillates: its last epoch is often not its best, and the circuit's
    rounding is rated as it will run)."""
    teacher = None
    if fake_quantization and classification:
        teacher, _ = train(X, y, hidden, n_outputs, classification, activation_bits, weight_bits,
                           rounding_bits, max_epochs, lr * TEACHER_LR, batch_size, weight_decay,
                           random_state, calibration=calibration,
                           max_lookup_bits=max_lookup_bits, fake_quantization=False)
    seed = 0 if random_state is None else int(random_state)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    calibration = X if calibration is None else calibration
    lo, hi = calibration.min(axis=0), calibration.max(axis=0)
    spread = np.where(hi > lo, hi - lo, (hi - lo).max() if (hi > lo).any() else 1.0)
    input_step = spread / 255.0
    net = QuantMLP(X.shape[1], tuple(hidden), n_outputs, activation_bits, weight_bits,
                   rounding_bits, input_step, lo)
    net.max_lookup_bits = max_lookup_bits
    Xt = torch.tensor(X, dtype=torch.float32)
    Ct = torch.tensor(calibration, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long if classification else torch.float32)
    if not classification and yt.ndim == 1:
        yt = yt[:, None]
    labels_loss = nn.functional.cross_entropy if classification else nn.functional.mse_loss
    if teacher is None:
        # Float training, or a regressor: a quarter of the epochs in float, then QAT at the full
        # rate on the targets alone (measured on diabetes, 4 splits x 2 seeds: starting from the
        # float network lowered R2 by 0.06, distilling from it by 0.07; a float regressor fits
        # the training targets' noise, which the quantized one then copies).
        warmup = max(1, max_epochs // 4) if fake_quantization else max_epochs

        def loss_fn(out, idx):
            return labels_loss(out, yt[idx])
    else:
        warmup = 0  # from the float teacher's weights
        with torch.no_grad():
            taught = nn.functional.softmax(teacher(Xt) / TEMPERATURE, dim=1)
        net.load_state_dict(teacher.state_dict())
        lr = lr * FINE_TUNE_LR

        def loss_fn(out, idx):
            t = TEMPERATURE
            taught_term = nn.functional.kl_div(nn.functional.log_softmax(out / t, dim=1),
                                               taught[idx], reduction="batchmean") * t * t
            return (1 - DISTILLATION) * labels_loss(out, yt[idx]) + DISTILLATION * taught_term
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max_epochs)
    n = len(Xt)
    warmup = min(warmup, max_epochs - 1)
    quantized = max_epochs - warmup
    marks = {max_epochs - 1 - (quantized - 1) * k // max(1, checkpoints - 1)
             for k in range(checkpoints)} if score is not None else set()
    best, best_score = None, -np.inf
    for epoch in range(max_epochs):
        if not fake_quantization:
            pass
        elif epoch == warmup:
            net.start_quantization(Xt, Ct)
        elif net.quantize:
            net.calibrate_rounding(Ct)  # the compiler's rounding for this epoch's weights
        net.train()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            optimizer.zero_grad()
            loss_fn(net(Xt[idx]), idx).backward()
            optimizer.step()
        schedule.step()
        if epoch in marks:
            net.eval()
            candidate = Deployed(net)
            rating = float(score(candidate))
            if rating > best_score:  # the earlier of equals: fewer epochs, same circuit score
                best, best_score = candidate, rating
    net.eval()
    if not fake_quantization:
        return net, -np.inf
    return (best, best_score) if best is not None else (Deployed(net), -np.inf)
