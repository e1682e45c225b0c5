"""Networks of fheml.sklearn (re-exported there): scikit-learn's MLPs compiled as trained, and
fheml's own NeuralNetClassifier / NeuralNetRegressor trained for FHE. Split from sklearn.py, whose
shared estimator base they extend."""
from __future__ import annotations

import numpy as np
import sklearn.neural_network as _nn
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from fheml import _core
from fheml.onnx import _output_noise_bits, _warn_if_far_from_float
from fheml.sklearn import (_DEFAULT_COMPILE_OPTIONS, _ROLES, _FheClassifier, _FheModel,
                           _FheRegressor, _n_bits_roles, _with_sklearn_signature)

__all__ = ["MLPClassifier", "MLPRegressor", "NeuralNetClassifier", "NeuralNetRegressor"]


# --- scikit-learn's multi-layer perceptrons.

_MLP_N_BITS_DOC = ('n_bits ("auto": the precision search picks activations, weights and '
                   'rounding bits by measurement on the training rows; or an int, or a dict '
                   f'per role {_ROLES})')
# Rows kept to calibrate the quantizers and measure the precision search's agreement.
_MLP_CALIBRATION_ROWS = 1000


class _RoundingCompile:
    """compile() with the accumulators' rounding method (networks only)."""

    def compile(self, X, p_error: float | None = None, global_p_error: float | None = None,
                threads: int = 0, rounding_method: str = "approximate",
                out_of_range: str = "warn", security_level: int = 128,
                profile: str = "standard", max_partitions: int = 3,
                output_noise_bits: int = 0):
        """As the other estimators' compile; rounding_method: "approximate" (no extra
        bootstrap; near a tie a lookup may read its neighbour, in simulate as encrypted) or
        "exact" (the low bits cleared by bootstraps first: encrypted equals clear on every
        row, 2 more bootstraps per neuron and rounded chunk). output_noise_bits: approximate
        outputs, the noise may change the lowest bits of each output's integer (within
        2^(output_noise_bits - 1) of the exact value): the last layer's lookups may then take
        cheaper bootstraps (fheml.onnx.compile_onnx_model; 0, the default: exact)."""
        if rounding_method not in ("approximate", "exact"):
            raise ValueError("rounding_method must be 'approximate' or 'exact', found "
                             f"{rounding_method!r}")
        self._rounding_method = rounding_method
        self._output_noise_bits = _output_noise_bits(output_noise_bits)
        return super().compile(X, p_error=p_error, global_p_error=global_p_error,
                               threads=threads, out_of_range=out_of_range,
                               security_level=security_level, profile=profile,
                               max_partitions=max_partitions)


class _FheMLP(_RoundingCompile, _FheModel):
    """coefs_ / intercepts_ layer by layer; the output activation runs on the client."""

    def _check_n_bits(self, n_bits) -> None:
        if not (isinstance(n_bits, str) and n_bits == "auto"):
            _n_bits_roles(n_bits)

    def _execute_chunk(self) -> int:
        return 8  # rows carry many bootstraps: keep the progress bar moving

    def _adopt(self, model, X: np.ndarray) -> None:
        if getattr(model, "out_activation_", None) == "logistic" and model.n_outputs_ > 1:
            raise ValueError("multilabel MLPClassifier (several independent sigmoid outputs) is "
                             "not supported; fit one classifier per label")
        self.sklearn_model_ = model
        for name in ("classes_", "n_iter_", "loss_", "n_layers_", "n_outputs_",
                     "out_activation_", "coefs_", "intercepts_"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))
        self._single_output = model.n_outputs_ == 1
        self._compile_options = dict(_DEFAULT_COMPILE_OPTIONS)
        self._compiled = False
        if len(X) > _MLP_CALIBRATION_ROWS:  # evenly spaced: the set's spread at bounded cost
            X = X[np.linspace(0, len(X) - 1, _MLP_CALIBRATION_ROWS).astype(int)]
        self._calibration = np.ascontiguousarray(X)
        self._build()

    def _build(self) -> None:
        o = self._compile_options
        search = isinstance(self.n_bits, str) and self.n_bits == "auto"
        roles = ({"model_inputs": 8, "op_inputs": 4, "op_weights": 4, "model_outputs": 8}
                 if search else _n_bits_roles(self.n_bits))
        self._fhe_model = _core.NeuralNetwork(
            [np.ascontiguousarray(c, dtype=np.float64) for c in self.coefs_],
            [np.ascontiguousarray(b, dtype=np.float64) for b in self.intercepts_],
            self.sklearn_model_.activation, self._link(self.n_outputs_), self._calibration,
            roles, rounding_threshold_bits=roles["op_inputs"],
            rounding_method=getattr(self, "_rounding_method", "approximate"),
            p_error=o["p_error"], global_p_error=o["global_p_error"], threads=o["threads"],
            search=search, out_of_range=o.get("out_of_range", "warn"),
            security_level=o.get("security_level", 128),
            profile=o.get("profile", "standard"), max_partitions=o.get("max_partitions", 3),
            output_noise_bits=getattr(self, "_output_noise_bits", 0))
        _warn_if_far_from_float(self._fhe_model, self.n_bits)

    @property
    def calibration_agreement(self) -> float:
        """Agreement of the compiled circuit (in the clear) with the float network on the
        calibration rows: the lower of R^2 and the share of matching classes (1 is perfect;
        under 0.9 fitting warns)."""
        check_is_fitted(self, "sklearn_model_")
        return self._fhe_model.calibration_agreement()

    @property
    def precision_trials(self) -> list[dict]:
        """The precision search's trials (n_bits "auto"): agreement with the float network on
        the calibration rows, estimated latency, which one was chosen."""
        check_is_fitted(self, "sklearn_model_")
        return self._fhe_model.precision_trials()


@_with_sklearn_signature(_nn.MLPClassifier, n_bits_default="auto", n_bits_doc=_MLP_N_BITS_DOC)
class MLPClassifier(_FheClassifier, _FheMLP):
    def _link(self, n_outputs: int) -> str:
        return "sigmoid" if n_outputs == 1 else "softmax"


@_with_sklearn_signature(_nn.MLPRegressor, n_bits_default="auto", n_bits_doc=_MLP_N_BITS_DOC)
class MLPRegressor(_FheRegressor, _FheMLP):
    pass


# --- fheml's own networks, trained for FHE (quantization-aware; torch underneath).

class _FheNeuralNet(_RoundingCompile, _FheModel):
    """A relu MLP trained with the compiler's quantization in the loop (fheml._qat): its
    activations and weights are n_bits integers from the start, so the compiled circuit keeps
    the trained accuracy with narrow lookups. Needs torch to fit (``pip install 'fheml[torch]'``),
    not to predict, compile or unpickle."""

    def __init__(self, n_bits=4, hidden_layer_sizes=(30, 30), rounding_bits=None,
                 max_epochs=60, lr=0.01, batch_size=64, weight_decay=1e-4, random_state=None):
        self.n_bits = n_bits
        self.hidden_layer_sizes = hidden_layer_sizes
        self.rounding_bits = rounding_bits
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.random_state = random_state

    def __sklearn_tags__(self):
        return BaseEstimator.__sklearn_tags__(self)

    def _check_n_bits(self, n_bits) -> None:
        if isinstance(n_bits, (bool, np.bool_)) or not isinstance(n_bits, (int, np.integer)) \
                or not 2 <= n_bits <= 8:
            raise ValueError(f"n_bits must be an int in 2..8 (bits of activations and weights), "
                             f"found {n_bits!r}")

    def _check_params(self) -> None:
        self._check_n_bits(self.n_bits)
        if self.rounding_bits is not None and (
                isinstance(self.rounding_bits, (bool, np.bool_))
                or not isinstance(self.rounding_bits, (int, np.integer))
                or not self.n_bits <= self.rounding_bits <= 8):
            raise ValueError(f"rounding_bits must be None or an int in n_bits..8, found "
                             f"{self.rounding_bits!r}")
        sizes = tuple(self.hidden_layer_sizes)
        if not sizes or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1
                            for h in sizes):
            raise ValueError("hidden_layer_sizes must be a non-empty tuple of positive ints, found "
                             f"{self.hidden_layer_sizes!r}")
        for name in ("max_epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, found {value!r}")
        if not (float(self.lr) > 0):
            raise ValueError(f"lr must be positive, found {self.lr!r}")

    def _targets(self, y):
        raise NotImplementedError

    def fit(self, X, y):
        """Trains the network on (X, y) with fake quantization (torch), then builds the circuit;
        ``fhe="disable"`` works after fit, ``compile`` is needed for simulate and execute."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=False)
        try:
            from fheml import _qat
        except ImportError as e:
            raise ImportError("fitting a NeuralNet estimator needs PyTorch: pip install "
                              "'fheml[torch]' (torch==2.13.0, CPU build)") from e
        targets, n_outputs, classification = self._targets(y)
        rounding = self.n_bits if self.rounding_bits is None else int(self.rounding_bits)
        self.sklearn_model_ = None  # no twin: the trained weights are the model
        self._compile_options = dict(_DEFAULT_COMPILE_OPTIONS)
        self._compiled = False
        keep = (np.linspace(0, len(X) - 1, _MLP_CALIBRATION_ROWS).astype(int)
                if len(X) > _MLP_CALIBRATION_ROWS else np.arange(len(X)))
        self._calibration = np.ascontiguousarray(X[keep])
        rated = np.asarray(targets)[keep]

        def score(net) -> float:
            """The candidate's circuit (as compile will build it) on the calibration rows, in
            disable mode: accuracy, or minus the mean squared error of standardized targets."""
            self._adopt_trained(net, classification)
            decision = self._fhe_model.decision_function(self._calibration, "disable")
            if classification:
                return float(np.mean(np.argmax(decision, axis=1) == rated))
            scaled = (decision - self._y_mean) / self._y_scale
            return -float(np.mean((scaled - rated.reshape(len(rated), -1)) ** 2))

        net, _ = _qat.train(X, targets, tuple(self.hidden_layer_sizes), n_outputs,
                            classification, int(self.n_bits), int(self.n_bits), rounding,
                            int(self.max_epochs), float(self.lr), int(self.batch_size),
                            float(self.weight_decay), self.random_state, score=score,
                            calibration=self._calibration)
        self._adopt_trained(net, classification)
        return self

    def _adopt_trained(self, net, classification: bool) -> None:
        """The weights of a trained network (fheml._qat.Deployed) and its circuit."""
        self.coefs_ = [lin.weight.detach().numpy().T.astype(np.float64) for lin in net.linears]
        self.intercepts_ = [lin.bias.detach().numpy().astype(np.float64) for lin in net.linears]
        self.activation_bounds_ = np.asarray(net.alpha, dtype=np.float64)
        if not classification:  # trained on standardized targets: the scale goes back in
            self.coefs_[-1] = self.coefs_[-1] * self._y_scale
            self.intercepts_[-1] = self.intercepts_[-1] * self._y_scale + self._y_mean
        self._build()

    def _build(self) -> None:
        o = self._compile_options
        bits = int(self.n_bits)
        self._fhe_model = _core.NeuralNetwork(
            [np.ascontiguousarray(c) for c in self.coefs_],
            [np.ascontiguousarray(b) for b in self.intercepts_], "relu",
            self._link(self.coefs_[-1].shape[1]), self._calibration,
            {"model_inputs": 8, "op_inputs": bits, "op_weights": bits, "model_outputs": 8},
            rounding_threshold_bits=bits if self.rounding_bits is None else int(self.rounding_bits),
            rounding_method=getattr(self, "_rounding_method", "approximate"),
            p_error=o["p_error"], global_p_error=o["global_p_error"], threads=o["threads"],
            per_channel_activations=False, activation_clip=list(self.activation_bounds_),
            activation_levels=2 ** bits - 1, out_of_range=o.get("out_of_range", "warn"),
            security_level=o.get("security_level", 128),
            profile=o.get("profile", "standard"), max_partitions=o.get("max_partitions", 3),
            output_noise_bits=getattr(self, "_output_noise_bits", 0))

    def _execute_chunk(self) -> int:
        return 8

    def fit_benchmark(self, X, y, sample_weight=None):
        raise AttributeError("NeuralNet estimators have no float twin; compare with "
                             "sklearn.neural_network.MLPClassifier/MLPRegressor")

    @classmethod
    def from_sklearn_model(cls, sklearn_model, X, n_bits=None):
        raise AttributeError("NeuralNet estimators are trained by fit; for a fitted "
                             "scikit-learn MLP use fheml.sklearn.MLPClassifier/MLPRegressor")


class NeuralNetClassifier(_FheClassifier, _FheNeuralNet):
    """A relu MLP classifier trained for FHE: n_bits (default 4) activations and weights,
    accumulators rounded to rounding_bits (default n_bits) before each lookup, one bootstrap per
    hidden neuron; softmax on the client. Parameters: n_bits, hidden_layer_sizes, rounding_bits,
    max_epochs, lr, batch_size, weight_decay, random_state."""

    def _link(self, n_outputs: int) -> str:
        return "softmax"

    def _targets(self, y):
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D class labels, found shape {y.shape}")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError("y has a single class; a classifier needs at least two")
        self._single_output = False
        return np.searchsorted(self.classes_, y), len(self.classes_), True


class NeuralNetRegressor(_FheRegressor, _FheNeuralNet):
    """A relu MLP regressor trained for FHE (see NeuralNetClassifier); targets are standardized
    for training and the scale folded back into the last layer."""

    def _targets(self, y):
        y = np.asarray(y, dtype=np.float64)
        self._single_output = y.ndim == 1
        y2 = y.reshape(len(y), -1)
        self._y_mean = y2.mean(axis=0)
        self._y_scale = np.where(y2.std(axis=0) > 0, y2.std(axis=0), 1.0)
        return (y2 - self._y_mean) / self._y_scale, y2.shape[1], False


# Public under fheml.sklearn: reprs, docs and pickles name that path.
for _cls in (MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor):
    _cls.__module__ = "fheml.sklearn"
