"""ONNX networks on encrypted data.

    from fheml.onnx import compile_onnx_model
    fhe_model = compile_onnx_model("model.onnx", X_train)      # or an onnx.ModelProto / bytes
    y = fhe_model.forward(X_test, fhe="execute")               # same outputs as the network

The model is read by fheml's C++ importer (the ONNX project's own protobuf classes): shape
subgraphs folded, BatchNormalization folded into the Conv/Gemm before it, Dropout/Identity
dropped, a final Softmax/LogSoftmax/ArgMax moved to the client. An op it cannot run is named
with its node in the error. The ``onnx`` Python package is not needed: bytes or a path will do.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from fheml import _core

__all__ = ["FheNetwork", "compile_onnx_model", "supported_ops"]

_MODES = ("disable", "simulate", "execute")
_ROLES = ("model_inputs", "op_inputs", "op_weights", "model_outputs")

# The roles a partial n_bits dict does not name (8-bit inputs and outputs, 4-bit activations and
# weights). With n_bits and rounding_threshold_bits both left to "auto", the precision search
# (C++ models::PrecisionSearch) picks them: the fastest candidate whose outputs agree with the
# float network's on the calibration rows: the classes of min_agreement of the rows, and the
# outputs themselves to an R^2 of min_agreement.
DEFAULT_N_BITS = {"model_inputs": 8, "op_inputs": 4, "op_weights": 4, "model_outputs": 8}


def supported_ops() -> list[str]:
    """The ONNX op types (default domain) the importer accepts."""
    return list(_core.supported_onnx_ops())


def _onnx_bytes(model) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ValueError(f"no ONNX file at {path}")
        return path.read_bytes()
    if hasattr(model, "SerializeToString"):  # onnx.ModelProto
        return model.SerializeToString()
    raise ValueError("model must be a path, bytes or an onnx.ModelProto, found "
                     f"{type(model).__name__}")


def _max_partitions(value) -> int:
    """max_partitions checked: an int in 1..8 (the C++ compiler's kMaxPartitions)."""
    if (not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_))
            or not 1 <= value <= 8):
        raise ValueError("max_partitions must be an int in 1..8 (1: one parameter set for the "
                         f"whole circuit), found {value!r}")
    return int(value)


def _output_noise_bits(value) -> int:
    """output_noise_bits checked: an int in 0..16 (the C++ compiler's kMaxOutputNoiseBits)."""
    if (not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_))
            or not 0 <= value <= 16):
        raise ValueError("output_noise_bits must be an int in 0..16 (0: exact outputs), found "
                         f"{value!r}")
    return int(value)


# Below this agreement with the float network on the calibration rows (the lower of R^2 and the
# share of matching classes), a compiled network warns: its predictions differ from the float
# model's on many rows (scikit-learn MLPs (20, 20) with 3-bit weights and activations on breast
# cancer, 2026-12-04: agreement 0.89 / 0.64 / 0.87 and test accuracy 0.91 / 0.81 / 0.88 for
# random_state 0 / 1 / 2, against 0.97 in float; the precision search, n_bits="auto", asks 0.99).
_AGREEMENT_WARNING = 0.9


def _warn_if_far_from_float(fhe_model, n_bits) -> None:
    agreement = fhe_model.calibration_agreement()
    if agreement < _AGREEMENT_WARNING:
        warnings.warn(
            f"the compiled network agrees with the float network only at {agreement:.2f} on the "
            f"calibration rows (1 is perfect: the lower of R^2 and the share of matching "
            f"classes) with n_bits {n_bits}: expect predictions far from the float model's. Use "
            f"n_bits='auto' (the precision search) or more bits.", UserWarning, stacklevel=3)


def _n_bits_roles(n_bits) -> dict[str, int]:
    if isinstance(n_bits, (bool, np.bool_)):
        raise ValueError(f"n_bits must be an int or a dict per role, found {n_bits!r}")
    if isinstance(n_bits, (int, np.integer)):
        return {role: int(n_bits) for role in _ROLES}
    if isinstance(n_bits, dict):
        out = dict(DEFAULT_N_BITS)
        for k, v in n_bits.items():
            if k not in _ROLES:
                raise ValueError(f"n_bits: unknown role {k!r} (roles: {', '.join(_ROLES)})")
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"n_bits[{k!r}] must be an int, found {v!r}")
            out[k] = int(v)
        return out
    raise ValueError(f"n_bits must be an int or a dict per role ({', '.join(_ROLES)}), "
                     f"found {type(n_bits).__name__}")


class FheNetwork:
    """A network compiled for encrypted inference (what compile_onnx_model and
    fheml.torch.compile_torch_model return).

    forward(X, fhe) gives what the original network gives (its final Softmax/ArgMax included,
    computed on the client); decision_function(X, fhe) the scores before that. fhe: "disable"
    (quantized, in the clear), "simulate" (with the noise model), "execute" (encrypted).
    """

    def __init__(self, onnx_bytes: bytes, X_calib, n_bits="auto", rounding_threshold_bits="auto",
                 rounding_method: str = "approximate", max_lookup_bits: int = 8,
                 p_error: float | None = None, global_p_error: float | None = None,
                 threads: int = 0, min_agreement: float = 0.99,
                 per_channel_activations: bool = True, out_of_range: str = "warn",
                 security_level: int = 128, profile: str = "standard",
                 max_partitions: int = 3, output_noise_bits: int = 0):
        if p_error is not None and global_p_error is not None:
            raise ValueError("set p_error or global_p_error, not both")
        for name, value in (("p_error", p_error), ("global_p_error", global_p_error)):
            if value is not None and not (0.0 < float(value) < 1.0):
                raise ValueError(f"{name} must be in (0, 1), found {value!r}")
        if not isinstance(threads, (int, np.integer)) or threads < 0:
            raise ValueError(f"threads must be an int >= 0 (0: all cores), found {threads!r}")
        search = (isinstance(n_bits, str) and n_bits == "auto"
                  and isinstance(rounding_threshold_bits, str) and rounding_threshold_bits == "auto")
        if isinstance(n_bits, str) and n_bits == "auto":
            n_bits = DEFAULT_N_BITS
        roles = _n_bits_roles(n_bits)
        if isinstance(rounding_threshold_bits, str):
            if rounding_threshold_bits != "auto":
                raise ValueError("rounding_threshold_bits must be an int, None or 'auto', found "
                                 f"{rounding_threshold_bits!r}")
            rounding_threshold_bits = roles["op_inputs"]
        elif rounding_threshold_bits is not None and (
                isinstance(rounding_threshold_bits, (bool, np.bool_))
                or not isinstance(rounding_threshold_bits, (int, np.integer))):
            raise ValueError("rounding_threshold_bits must be an int, None or 'auto', found "
                             f"{rounding_threshold_bits!r}")
        info = _core.import_onnx(onnx_bytes)
        self.input_shape = tuple(info["input_shape"])
        X = self._rows(X_calib, what="X_calib")
        if len(X) == 0:
            raise ValueError("X_calib has no rows: give representative inputs (the training set)")
        self.n_features_in_ = int(np.prod(self.input_shape[1:], dtype=np.int64))
        self._fhe_model = _core.NeuralNetwork(
            onnx_bytes, X, roles, rounding_threshold_bits=rounding_threshold_bits,
            rounding_method=rounding_method, max_lookup_bits=int(max_lookup_bits),
            p_error=p_error, global_p_error=global_p_error, threads=int(threads), search=search,
            min_agreement=float(min_agreement),
            per_channel_activations=bool(per_channel_activations), out_of_range=out_of_range,
            security_level=int(security_level), profile=profile,
            max_partitions=_max_partitions(max_partitions),
            output_noise_bits=_output_noise_bits(output_noise_bits))
        chosen = [t for t in self._fhe_model.precision_trials() if t["chosen"]]
        self.n_bits = chosen[0]["n_bits"] if chosen else roles
        _warn_if_far_from_float(self._fhe_model, self.n_bits)
        self.rounding_threshold_bits = (chosen[0]["rounding_threshold_bits"] if chosen
                                        else rounding_threshold_bits)
        self._compiled = True
        self._out_of_range = out_of_range
        self._single_output = False
        self.classes_ = None

    # --- inputs

    def _rows(self, X, what: str = "X") -> np.ndarray:
        if hasattr(X, "detach"):  # a torch tensor
            X = X.detach().cpu().numpy()
        X = np.asarray(X)
        if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise ValueError(f"{what} must be numeric, found dtype {X.dtype}")
        sample = self.input_shape[1:]
        width = int(np.prod(sample, dtype=np.int64))
        if X.ndim == len(self.input_shape) and tuple(X.shape[1:]) == tuple(sample):
            X = X.reshape(len(X), width)
        elif X.ndim == 2 and X.shape[1] == width:
            pass
        elif X.ndim == len(sample) and tuple(X.shape) == tuple(sample):
            X = X.reshape(1, width)  # one sample without its batch axis
        else:
            raise ValueError(f"{what} has shape {X.shape}; the network takes samples of shape "
                             f"{tuple(sample)} (as [N, {', '.join(map(str, sample))}] or "
                             f"[N, {width}])")
        return np.ascontiguousarray(X, dtype=np.float64)

    @staticmethod
    def _check_mode(fhe: str) -> None:
        if fhe not in _MODES:
            raise ValueError(f"fhe must be 'disable', 'simulate' or 'execute', found {fhe!r}")

    # --- running

    def decision_function(self, X, fhe: str = "disable", client=None) -> np.ndarray:
        """The network's output before the ops moved to the client [N, C]. client: a
        dask.distributed Client to run fhe="execute" on its workers (fheml.distributed)."""
        self._check_mode(fhe)
        X = self._rows(X)
        if client is not None:
            from fheml import distributed
            distributed.check_mode(fhe, client)
            return distributed.model_decision(self, self._fhe_model, X, client,
                                              self._out_of_range, 8)
        chunk = max(1, 4 * self._fhe_model.statistics()["threads"])
        if fhe != "execute" or len(X) <= chunk:
            return self._fhe_model.decision_function(X, fhe)
        parts = []
        with tqdm(total=len(X), desc="FHE", unit="row", delay=1.0, leave=False) as bar:
            for start in range(0, len(X), chunk):
                parts.append(self._fhe_model.decision_function(X[start:start + chunk], fhe))
                bar.update(len(parts[-1]))
        return np.vstack(parts)

    def forward(self, X, fhe: str = "disable", client=None) -> np.ndarray:
        """What the original network outputs, computed in mode fhe."""
        return self.post_processing(self.decision_function(X, fhe, client))

    predict = forward

    def float_forward(self, X) -> np.ndarray:
        """The imported float graph on doubles (no quantization): the reference."""
        return self.post_processing(self._fhe_model.float_decision_function(self._rows(X)))

    def post_processing(self, y) -> np.ndarray:
        y = np.ascontiguousarray(np.asarray(y, dtype=np.float64).reshape(len(y), -1))
        return self._fhe_model.post_processing(y)

    def quantize_input(self, X) -> np.ndarray:
        return self._fhe_model.quantize_input(self._rows(X))

    def dequantize_output(self, q) -> np.ndarray:
        return self._fhe_model.dequantize_output(np.ascontiguousarray(q, dtype=np.int64))

    @property
    def fhe_circuit(self):
        """The compiled C++ model: ``report()``, ``statistics()``, ``keygen()``, ``save()``."""
        return self._fhe_model

    @property
    def calibration_agreement(self) -> float:
        """Agreement of the compiled circuit (in the clear) with the float network on the
        calibration rows: the lower of R^2 and the share of matching classes (1 is perfect;
        under 0.9 compiling warns)."""
        return self._fhe_model.calibration_agreement()

    @property
    def precision_trials(self) -> list[dict]:
        """The precision search's trials (empty when n_bits or rounding_threshold_bits was given):
        n_bits, rounding bits, agreement with the float network on the calibration rows,
        estimated latency per sample (one thread), and which one was chosen."""
        return self._fhe_model.precision_trials()

    @property
    def import_info(self) -> dict:
        """The imported graph (text form), the ops moved to the client and every rewrite."""
        return self._fhe_model.import_info()

    def __getstate__(self):
        raise TypeError("an FheNetwork is not pickled: save deployment artifacts with "
                        "fheml.deployment.FHEModelDev, or keep the .onnx file and recompile")


def compile_onnx_model(model, X_calib, n_bits="auto", rounding_threshold_bits="auto",
                       rounding_method: str = "approximate", p_error: float | None = None,
                       global_p_error: float | None = None, threads: int = 0,
                       max_lookup_bits: int = 8, min_agreement: float = 0.99,
                       out_of_range: str = "warn", security_level: int = 128,
                       profile: str = "standard", max_partitions: int = 3,
                       output_noise_bits: int = 0) -> FheNetwork:
    """Compiles an ONNX network (path, bytes or onnx.ModelProto) for encrypted inference.

    X_calib: representative inputs ([N, ...] as the network takes them, or flat [N, F]); their
    ranges calibrate every quantizer. n_bits: an int for every role, or a dict of
    model_inputs / op_inputs / op_weights / model_outputs (roles left out: DEFAULT_N_BITS).
    rounding_threshold_bits: accumulators are rounded to this many bits before a lookup (None:
    no rounding, lookups as wide as their inputs up to max_lookup_bits). Both "auto" (the
    default): the precision search tries 3- to 6-bit activations and weights and keeps the
    fastest whose outputs agree with the float network's on the calibration rows: the same class
    on at least min_agreement of them and an R^2 of the outputs of at least min_agreement (see
    precision_trials). One of them given: the other "auto" means
    rounding to op_inputs bits, n_bits DEFAULT_N_BITS.
    rounding_method: "approximate" (no extra bootstrap; near a tie the neighbouring entry) or
    "exact" (2 bootstraps per removed chunk). p_error / global_p_error: failure budget per
    bootstrap / per prediction (default 2^-40 per bootstrap). out_of_range: inputs beyond the
    calibrated range are clipped, with a fheml.InputRangeWarning ("warn"), refused with a
    ValueError ("raise"), or silently ("clip"). security_level: 128 or 132 bits. profile:
    "standard", or "ind-cpa-d" when decrypted results may reach the server (every bootstrap
    fails with probability at most 2^-64, 132-bit keys; README, Security). max_partitions: up
    to this many parameter sets, one per group of lookups, each kept only if it saves 5% of the
    estimated cost (1: one set for the whole circuit). output_noise_bits: approximate outputs,
    the noise may change the lowest bits of each output's integer (each within
    2^(output_noise_bits - 1) of the exact value, clamped into its range): a wide last layer
    then no longer needs low-noise, costlier bootstraps on the lookups it reads (bench/README.md,
    "Approximate outputs"; 0, the default: exact). The precision search and
    calibration_agreement measure it with the noise drawn (simulate).
    """
    return FheNetwork(_onnx_bytes(model), X_calib, n_bits=n_bits,
                      rounding_threshold_bits=rounding_threshold_bits,
                      rounding_method=rounding_method, max_lookup_bits=max_lookup_bits,
                      p_error=p_error, global_p_error=global_p_error, threads=threads,
                      min_agreement=min_agreement, out_of_range=out_of_range,
                      security_level=security_level, profile=profile,
                      max_partitions=max_partitions, output_noise_bits=output_noise_bits)
