"""scikit-learn linear and tree models that run on encrypted data.

Each class takes its scikit-learn twin's hyper-parameters (same names, same defaults, read from
the installed scikit-learn) plus ``n_bits``. ``fit`` trains the twin in the clear and quantizes
it; ``compile`` builds the TFHE circuit; ``predict``, ``predict_proba`` and
``decision_function`` take ``fhe="disable" | "simulate" | "execute"``. The linear part
``X @ coef + intercept`` runs encrypted; links (sigmoid, softmax, exp) and the argmax run on the
client after decryption. The circuit has no bootstrap, so ``execute`` returns exactly what
``disable`` does, on every row.

Tree models (decision trees, random forests, extra trees, gradient boosting and histogram
gradient boosting) take ``n_bits`` as the bits of each feature's input grid (6 by default) or a
dict {"model_inputs": ..., "model_outputs": ...} (the second: bits of the leaf values). Their
splits cost no bootstrap; each block of leaves costs one, and the sum over trees is computed
encrypted (one ciphertext per output).
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import sklearn.ensemble as _ens
import sklearn.linear_model as _lm
import sklearn.neural_network as _nn
import sklearn.svm as _svm
import sklearn.tree as _tree
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from fheml import _core
from fheml._trees import TreeModelMixin

__all__ = [
    "DecisionTreeClassifier", "DecisionTreeRegressor", "ElasticNet", "ExtraTreesClassifier",
    "ExtraTreesRegressor", "GammaRegressor", "GradientBoostingClassifier",
    "GradientBoostingRegressor", "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor", "Lasso", "LinearRegression", "LinearSVC", "LinearSVR",
    "LogisticRegression", "MLPClassifier", "MLPRegressor", "NeuralNetClassifier",
    "NeuralNetRegressor", "PoissonRegressor", "RandomForestClassifier", "RandomForestRegressor",
    "Ridge", "SGDClassifier", "SGDRegressor", "TweedieRegressor",
]

_MODES = ("disable", "simulate", "execute")
_OUT_OF_RANGE = ("warn", "raise", "clip")
# What a model fitted but not compiled runs with (compile's defaults).
_DEFAULT_COMPILE_OPTIONS = {"p_error": None, "global_p_error": None, "threads": 0,
                            "out_of_range": "warn", "security_level": 128}
_ROLES = ("model_inputs", "op_inputs", "op_weights", "model_outputs")
# Rows per encrypted call: each row is F ciphertexts of 16 KiB (N = 2048), so 16 rows of 30
# features stay in cache; 64 rows per call cost 25% more per row (bench/README.md).
_EXECUTE_CHUNK = 16


def _n_bits_roles(n_bits) -> dict[str, int]:
    """n_bits as an int (every role) or a dict per role -> the dict the C++ side reads."""
    if isinstance(n_bits, (bool, np.bool_)):
        raise ValueError(f"n_bits must be an int or a dict per role, found {n_bits!r}")
    if isinstance(n_bits, (int, np.integer)):
        return {role: int(n_bits) for role in _ROLES}
    if isinstance(n_bits, dict):
        roles = {}
        for role, bits in n_bits.items():
            # int() would truncate 2.5 and parse "8": only integers are bit widths.
            if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)):
                raise ValueError(f"n_bits[{role!r}] must be an int, found {bits!r}")
            roles[str(role)] = int(bits)
        return roles
    raise ValueError(f"n_bits must be an int or a dict per role ({', '.join(_ROLES)}), "
                     f"found {type(n_bits).__name__}")


def _with_sklearn_signature(sklearn_class: type, n_bits_default=8, n_bits_doc=None):
    """Gives an estimator the __init__ of `sklearn_class` plus a leading ``n_bits``.

    scikit-learn's get_params/clone read the __init__ signature; taking it from the installed
    library keeps the parameters and defaults right across its versions. A twin whose __init__
    takes **kwargs (XGBoost, LightGBM) adds the parameters its get_params reports, and extra
    keyword arguments are kept and passed on as it does with them.
    """
    P = inspect.Parameter
    signature = inspect.signature(sklearn_class.__init__).parameters
    theirs = [p for name, p in signature.items()
              if name != "self" and p.kind not in (P.VAR_KEYWORD, P.VAR_POSITIONAL)]
    open_ended = any(p.kind == P.VAR_KEYWORD for p in signature.values())
    if open_ended:
        named = {p.name for p in theirs}
        theirs += [P(name, P.KEYWORD_ONLY, default=value)
                   for name, value in sklearn_class().get_params(deep=False).items()
                   if name not in named]
    names = [p.name for p in theirs]
    defaults = {p.name: p.default for p in theirs}

    def __init__(self, n_bits=n_bits_default, **params):
        unknown = set(params) - set(names)
        if unknown and not open_ended:
            raise TypeError(f"{type(self).__name__}() got unexpected parameters "
                            f"{sorted(unknown)}; accepted: n_bits, {', '.join(names)}")
        self.n_bits = n_bits
        for name in names:
            setattr(self, name, params.get(name, defaults[name]))
        if open_ended:
            self._other_params = {k: params[k] for k in sorted(unknown)}
            for k, v in self._other_params.items():
                setattr(self, k, v)

    __init__.__signature__ = inspect.Signature(
        [P("self", P.POSITIONAL_OR_KEYWORD),
         P("n_bits", P.POSITIONAL_OR_KEYWORD, default=n_bits_default)]
        + [p.replace(kind=P.KEYWORD_ONLY) for p in theirs])

    def get_params(self, deep=True):
        params = BaseEstimator.get_params(self, deep=deep)
        params.update(getattr(self, "_other_params", {}))
        return params

    def set_params(self, **params):
        other = getattr(self, "_other_params", {})
        for key in [k for k in params if k not in names and k != "n_bits"]:
            other[key] = params[key]
            setattr(self, key, params.pop(key))
        self._other_params = other
        return BaseEstimator.set_params(self, **params)

    def decorate(cls):
        cls.__init__ = __init__
        if open_ended:
            cls.get_params = get_params
            cls.set_params = set_params
        cls._sklearn_class = sklearn_class
        doc = n_bits_doc or f"n_bits (int, or dict per role {_ROLES})"
        cls.__doc__ = (f"{sklearn_class.__name__} from {sklearn_class.__module__.split('.')[0]}, "
                       f"run on encrypted data.\n\n"
                       f"Parameters: {doc}, then those of "
                       f"{sklearn_class.__module__}.{sklearn_class.__name__}.")
        return cls

    return decorate


class _UncompiledCircuit:
    """fhe_circuit of a model fitted but not compiled: the C++ model, whose calls that would
    simulate or encrypt raise until compile() (everything else passes through)."""

    def __init__(self, core):
        self._core = core

    @staticmethod
    def _refuse(what: str):
        raise ValueError(f"{what} needs a compiled model: call compile(X) after fit")

    def run_integers(self, q, fhe: str = "disable"):
        if fhe != "disable":
            self._refuse(f"run_integers(fhe={fhe!r})")
        return self._core.run_integers(q, fhe)

    def decision_function(self, x, fhe: str = "disable"):
        if fhe != "disable":
            self._refuse(f"decision_function(fhe={fhe!r})")
        return self._core.decision_function(x, fhe)

    def keygen(self):
        self._refuse("keygen()")

    def save(self, *args, **kwargs):
        self._refuse("save()")

    def __getattr__(self, name):
        return getattr(self._core, name)


class _FheModel(BaseEstimator):
    """Shared logic of the estimators (not public). Subclasses say how a fitted scikit-learn
    model becomes a compiled C++ model: _check_n_bits, _adopt (after fit) and _build (the C++
    object from what _adopt kept, again at compile and unpickling)."""

    _sklearn_class: type

    # --- What each subclass says about itself.

    def _link(self, n_outputs: int) -> str:
        return "identity"

    def _check_n_bits(self, n_bits) -> None:
        _n_bits_roles(n_bits)

    def _execute_chunk(self) -> int:
        """Rows per encrypted call."""
        return _EXECUTE_CHUNK

    def _adopt(self, model, X: np.ndarray) -> None:
        raise NotImplementedError

    def _build(self) -> None:
        raise NotImplementedError

    # --- Training and compilation.

    def _sklearn_params(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        params.pop("n_bits")
        return params

    def fit(self, X, y, sample_weight=None):
        """Trains scikit-learn's model in the clear on (X, y), then quantizes it with n_bits.

        After fit, ``fhe="disable"`` works; ``compile`` is needed for simulate and execute.
        """
        self._check_n_bits(self.n_bits)  # refuse a malformed n_bits before training
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=False)
        model = self._sklearn_class(**self._sklearn_params())
        if sample_weight is None:
            model.fit(X, y)
        else:
            model.fit(X, y, sample_weight=sample_weight)
        self._adopt(model, X)
        return self

    def fit_benchmark(self, X, y, sample_weight=None):
        """Fits, and returns (self, the fitted float scikit-learn model) to compare against."""
        self.fit(X, y, sample_weight=sample_weight)
        return self, self.sklearn_model_

    @classmethod
    def from_sklearn_model(cls, sklearn_model, X, n_bits=None):
        """Wraps an already fitted scikit-learn model; X (training-like rows) calibrates the
        input quantizers. n_bits: the class's default when None."""
        if n_bits is None:
            n_bits = inspect.signature(cls.__init__).parameters["n_bits"].default
        if not isinstance(sklearn_model, cls._sklearn_class):
            raise ValueError(f"{cls.__name__}.from_sklearn_model takes a fitted "
                             f"{cls._sklearn_class.__name__}, found "
                             f"{type(sklearn_model).__name__}")
        check_is_fitted(sklearn_model)
        if X is None:
            raise ValueError("from_sklearn_model needs X: rows whose ranges calibrate the input "
                             "quantizers (the training set, or a representative sample)")
        ours = cls(n_bits=n_bits, **sklearn_model.get_params(deep=False))
        ours._check_n_bits(n_bits)
        X = validate_data(ours, X, dtype=np.float64)
        if X.shape[1] != sklearn_model.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model "
                             f"{sklearn_model.n_features_in_}")
        ours._adopt(sklearn_model, X)
        return ours

    def compile(self, X, p_error: float | None = None, global_p_error: float | None = None,
                threads: int = 0, out_of_range: str = "warn", security_level: int = 128):
        """Compiles the circuit for simulate and execute.

        X: representative rows (checked against the model: features, finite values); the input
        quantizers keep the ranges calibrated by fit, and rows beyond them are computed up to a
        range past each end (linear models), clipped further out. p_error / global_p_error: the
        failure budget per bootstrap / per prediction (a linear circuit has no bootstrap: its
        decryption is exact either way). threads: cores for execute (0 = all, at most 1024).
        out_of_range: values clipped at the quantizers' ends give a fheml.InputRangeWarning
        ("warn"), a ValueError ("raise") or nothing ("clip"). Trees never need it: a value past
        the grid compares with every threshold as the grid's end does. security_level: 128 (the
        lattice-estimator curve Concrete uses) or 132 (TFHE-rs's design target: a margin against
        better attacks, for slightly larger keys and slower bootstraps).
        """
        check_is_fitted(self, "sklearn_model_")
        validate_data(self, X, dtype=np.float64, reset=False)
        if p_error is not None and global_p_error is not None:
            raise ValueError("set p_error or global_p_error, not both")
        if (not isinstance(threads, (int, np.integer)) or isinstance(threads, (bool, np.bool_))
                or threads < 0):
            raise ValueError(f"threads must be an int >= 0 (0: all cores), found {threads!r}")
        if security_level not in (128, 132) or isinstance(security_level, bool):
            raise ValueError(f"security_level must be 128 or 132 (bits), found {security_level!r}")
        if out_of_range not in _OUT_OF_RANGE:
            raise ValueError(f"out_of_range must be one of {', '.join(map(repr, _OUT_OF_RANGE))}, "
                             f"found {out_of_range!r}")
        self._compile_options = {"p_error": p_error, "global_p_error": global_p_error,
                                 "threads": int(threads), "out_of_range": out_of_range,
                                 "security_level": int(security_level)}
        self._build()
        self._compiled = True
        return self

    @property
    def fhe_circuit(self):
        """The compiled C++ model: ``report()``, ``statistics()``, ``keygen()``,
        ``run_integers()``. Before ``compile`` its simulate/execute calls and keygen raise, as
        ``predict(X, fhe="execute")`` does; reports and ``fhe="disable"`` work."""
        check_is_fitted(self, "sklearn_model_")
        return self._fhe_model if self._compiled else _UncompiledCircuit(self._fhe_model)

    # --- Pickling: the C++ object is rebuilt from the weights and calibration ranges (keys are
    # generated afresh: they never leave the process that made them).

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_fhe_model", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "sklearn_model_" in state:
            self._build()

    # --- The client's steps, one by one.

    def quantize_input(self, X) -> np.ndarray:
        """Floats [N, F] -> the integers the circuit takes (per-feature scales)."""
        check_is_fitted(self, "sklearn_model_")
        X = validate_data(self, X, dtype=np.float64, reset=False, order="C")
        return self._fhe_model.quantize_input(X)

    def dequantize_output(self, q) -> np.ndarray:
        """Decrypted integers [N, C] -> the float decision function [N, C]."""
        check_is_fitted(self, "sklearn_model_")
        q = np.ascontiguousarray(q, dtype=np.int64)
        if q.ndim == 1:
            q = q.reshape(-1, 1)
        return self._fhe_model.dequantize_output(q)

    def post_processing(self, y) -> np.ndarray:
        """Decision function [N, C] -> the model's outputs (the link: identity, exp, sigmoid,
        softmax...), as scikit-learn computes them."""
        check_is_fitted(self, "sklearn_model_")
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        return self._fhe_model.post_processing(np.ascontiguousarray(y))

    # --- Running.

    def _check_mode(self, fhe: str) -> None:
        if fhe not in _MODES:
            raise ValueError(f"fhe must be 'disable', 'simulate' or 'execute', found {fhe!r}")
        if fhe != "disable" and not self._compiled:
            raise ValueError(f"fhe={fhe!r} needs a compiled model: call compile(X) after fit")

    def _decision(self, X, fhe: str) -> np.ndarray:
        """The (de)quantized linear part [N, C], in mode fhe."""
        check_is_fitted(self, "sklearn_model_")
        self._check_mode(fhe)
        X = validate_data(self, X, dtype=np.float64, reset=False, order="C")
        chunk = self._execute_chunk()
        if fhe != "execute" or len(X) <= chunk:
            return self._fhe_model.decision_function(X, fhe)
        parts = []
        with tqdm(total=len(X), desc="FHE", unit="row", delay=1.0, leave=False) as bar:
            for start in range(0, len(X), chunk):
                parts.append(self._fhe_model.decision_function(X[start:start + chunk], fhe))
                bar.update(len(parts[-1]))
        return np.vstack(parts)

    def __sklearn_tags__(self):
        # What the twin says about its targets (several outputs, positive only...).
        tags = super().__sklearn_tags__()
        tags.target_tags = self._sklearn_class(**self._sklearn_params()).__sklearn_tags__().target_tags
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "sklearn_model_")


class _FheLinearModel(_FheModel):
    """x @ coef + intercept: the 12 linear estimators."""

    def _adopt(self, model, X: np.ndarray) -> None:
        """Copies the fitted attributes of `model` and quantizes it (calibrated on X)."""
        self.sklearn_model_ = model
        for name in ("classes_", "n_iter_"):
            if getattr(model, name, None) is not None:  # Ridge's n_iter_ is None for most solvers
                setattr(self, name, getattr(model, name))
        coef = np.asarray(model.coef_, dtype=np.float64)
        self.coef_ = model.coef_
        self.intercept_ = model.intercept_
        self._single_output = coef.ndim == 1  # a regressor fitted on y [N] (not [N, 1])
        weights = np.ascontiguousarray(np.atleast_2d(coef).T)  # [F, C]
        self._bias = np.ascontiguousarray(
            np.broadcast_to(np.asarray(model.intercept_, dtype=np.float64).ravel(),
                            (weights.shape[1],)))
        self._compile_options = dict(_DEFAULT_COMPILE_OPTIONS)
        self._compiled = False
        # The training rows calibrate the inputs (each feature's range) and steer the rounding
        # of the weights (error feedback); what remains is the weights on the grid and the
        # ranges, from which the same circuit is rebuilt (compile, unpickling).
        self._calibration = np.ascontiguousarray(X)
        self._weights = weights
        self._build(optimize_rounding=True)
        self._weights = self._fhe_model.coef
        self._calibration = np.ascontiguousarray(np.vstack([X.min(axis=0), X.max(axis=0)]))

    def _build(self, optimize_rounding: bool = False) -> None:
        o = self._compile_options
        self._fhe_model = _core.LinearModel(
            self._weights, self._bias, self._link(self._weights.shape[1]), self._calibration,
            _n_bits_roles(self.n_bits), p_error=o["p_error"], global_p_error=o["global_p_error"],
            optimize_rounding=optimize_rounding, threads=o["threads"],
            out_of_range=o.get("out_of_range", "warn"),
            security_level=o.get("security_level", 128))


class _FheRegressor(RegressorMixin, _FheModel):
    def predict(self, X, fhe: str = "disable") -> np.ndarray:
        """Predictions [N] (or [N, C] for several targets), with the link applied."""
        d = self._decision(X, fhe)
        y = self._fhe_model.post_processing(d)
        return y.ravel() if self._single_output else y


class _FheClassifier(ClassifierMixin, _FheModel):
    def _link(self, n_outputs: int) -> str:
        return "identity"  # no probabilities (hinge losses); subclasses with them override

    def _has_proba(self) -> bool:
        return self._link(2) != "identity"

    def decision_function(self, X, fhe: str = "disable") -> np.ndarray:
        """Scores [N] for two classes (positive: classes_[1]), [N, C] for more."""
        d = self._decision(X, fhe)
        return d.ravel() if d.shape[1] == 1 else d

    @available_if(_has_proba)
    def predict_proba(self, X, fhe: str = "disable") -> np.ndarray:
        """Class probabilities [N, n_classes], computed on the client from decrypted scores."""
        d = self._decision(X, fhe)
        return self._fhe_model.post_processing(d)

    def predict(self, X, fhe: str = "disable") -> np.ndarray:
        d = self._decision(X, fhe)
        # One column: a score (positive class above 0) or a probability (above 1/2).
        threshold = 0.5 if self._link(d.shape[1]) == "probability" else 0.0
        index = (d[:, 0] > threshold).astype(int) if d.shape[1] == 1 else d.argmax(axis=1)
        return self.classes_[index]


class _LinearRegressor(_FheRegressor, _FheLinearModel):
    pass


class _LinearClassifier(_FheClassifier, _FheLinearModel):
    pass


# --- The twelve estimators.

@_with_sklearn_signature(_lm.LinearRegression)
class LinearRegression(_LinearRegressor):
    pass


@_with_sklearn_signature(_lm.Ridge)
class Ridge(_LinearRegressor):
    pass


@_with_sklearn_signature(_lm.Lasso)
class Lasso(_LinearRegressor):
    pass


@_with_sklearn_signature(_lm.ElasticNet)
class ElasticNet(_LinearRegressor):
    pass


@_with_sklearn_signature(_svm.LinearSVR)
class LinearSVR(_LinearRegressor):
    pass


@_with_sklearn_signature(_lm.SGDRegressor)
class SGDRegressor(_LinearRegressor):
    pass


@_with_sklearn_signature(_lm.PoissonRegressor)
class PoissonRegressor(_LinearRegressor):
    def _link(self, n_outputs: int) -> str:
        return "exp"


@_with_sklearn_signature(_lm.GammaRegressor)
class GammaRegressor(_LinearRegressor):
    def _link(self, n_outputs: int) -> str:
        return "exp"


@_with_sklearn_signature(_lm.TweedieRegressor)
class TweedieRegressor(_LinearRegressor):
    def _link(self, n_outputs: int) -> str:
        # scikit-learn: link="auto" is identity for power <= 0, log otherwise.
        link = self.link if self.link != "auto" else ("identity" if self.power <= 0 else "log")
        return "exp" if link == "log" else "identity"


@_with_sklearn_signature(_lm.LogisticRegression)
class LogisticRegression(_LinearClassifier):
    def _link(self, n_outputs: int) -> str:
        return "sigmoid" if n_outputs == 1 else "softmax"


@_with_sklearn_signature(_svm.LinearSVC)
class LinearSVC(_LinearClassifier):
    pass


@_with_sklearn_signature(_lm.SGDClassifier)
class SGDClassifier(_LinearClassifier):
    def _link(self, n_outputs: int) -> str:
        return {"log_loss": "ovr_sigmoid", "modified_huber": "modified_huber"}.get(self.loss,
                                                                                  "identity")


# --- Tree models.

_TREE_N_BITS = ("n_bits (int: bits of each feature's input grid, 6 by default; or a dict with "
                "model_inputs and model_outputs, the bits of the leaf values, 8 by default)")


def tree_estimator(sklearn_class, n_bits_default=6):
    """Class decorator of the tree estimators (also used by fheml.xgboost and fheml.lightgbm)."""
    return _with_sklearn_signature(sklearn_class, n_bits_default=n_bits_default,
                                   n_bits_doc=_TREE_N_BITS.replace("6 by default",
                                                                   f"{n_bits_default} by default"))


class TreeRegressor(TreeModelMixin, _FheRegressor):
    """Base of the tree regressors (fheml.xgboost and fheml.lightgbm derive from it)."""


class TreeClassifier(TreeModelMixin, _FheClassifier):
    """Base of the tree classifiers (fheml.xgboost and fheml.lightgbm derive from it)."""


@tree_estimator(_tree.DecisionTreeClassifier)
class DecisionTreeClassifier(TreeClassifier):
    pass


@tree_estimator(_tree.DecisionTreeRegressor)
class DecisionTreeRegressor(TreeRegressor):
    pass


@tree_estimator(_ens.RandomForestClassifier)
class RandomForestClassifier(TreeClassifier):
    pass


@tree_estimator(_ens.RandomForestRegressor)
class RandomForestRegressor(TreeRegressor):
    pass


@tree_estimator(_ens.ExtraTreesClassifier)
class ExtraTreesClassifier(TreeClassifier):
    pass


@tree_estimator(_ens.ExtraTreesRegressor)
class ExtraTreesRegressor(TreeRegressor):
    pass


@tree_estimator(_ens.GradientBoostingClassifier)
class GradientBoostingClassifier(TreeClassifier):
    pass


@tree_estimator(_ens.GradientBoostingRegressor)
class GradientBoostingRegressor(TreeRegressor):
    pass


@tree_estimator(_ens.HistGradientBoostingClassifier)
class HistGradientBoostingClassifier(TreeClassifier):
    pass


@tree_estimator(_ens.HistGradientBoostingRegressor)
class HistGradientBoostingRegressor(TreeRegressor):
    pass


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
                out_of_range: str = "warn", security_level: int = 128):
        """As the other estimators' compile; rounding_method: "approximate" (no extra
        bootstrap; near a tie a lookup may read its neighbour, in simulate as encrypted) or
        "exact" (the low bits cleared by bootstraps first: encrypted equals clear on every
        row, 2 more bootstraps per neuron and rounded chunk)."""
        if rounding_method not in ("approximate", "exact"):
            raise ValueError("rounding_method must be 'approximate' or 'exact', found "
                             f"{rounding_method!r}")
        self._rounding_method = rounding_method
        return super().compile(X, p_error=p_error, global_p_error=global_p_error,
                               threads=threads, out_of_range=out_of_range,
                               security_level=security_level)


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
            security_level=o.get("security_level", 128))

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
                 max_epochs=60, lr=0.01, batch_size=64, weight_decay=0.0, random_state=None):
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
        net = _qat.train(X, targets, tuple(self.hidden_layer_sizes), n_outputs, classification,
                         int(self.n_bits), int(self.n_bits), rounding, int(self.max_epochs),
                         float(self.lr), int(self.batch_size), float(self.weight_decay),
                         self.random_state)
        self.coefs_ = [lin.weight.detach().numpy().T.astype(np.float64) for lin in net.linears]
        self.intercepts_ = [lin.bias.detach().numpy().astype(np.float64) for lin in net.linears]
        self.activation_bounds_ = np.asarray(net.alpha, dtype=np.float64)
        if not classification:  # trained on standardized targets: the scale goes back in
            self.coefs_[-1] = self.coefs_[-1] * self._y_scale
            self.intercepts_[-1] = self.intercepts_[-1] * self._y_scale + self._y_mean
        self.sklearn_model_ = None  # no twin: the weights above are the model
        self._compile_options = dict(_DEFAULT_COMPILE_OPTIONS)
        self._compiled = False
        if len(X) > _MLP_CALIBRATION_ROWS:
            X = X[np.linspace(0, len(X) - 1, _MLP_CALIBRATION_ROWS).astype(int)]
        self._calibration = np.ascontiguousarray(X)
        self._build()
        return self

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
            security_level=o.get("security_level", 128))

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
