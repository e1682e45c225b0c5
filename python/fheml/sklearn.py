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
import sklearn.svm as _svm
import sklearn.tree as _tree
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from fheml import _core
from fheml._trees import TreeModelMixin
from fheml.onnx import _max_partitions

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
                            "out_of_range": "warn", "security_level": 128,
                            "profile": "standard", "max_partitions": 3}
_PROFILES = ("standard", "ind-cpa-d")
_ROLES = ("model_inputs", "op_inputs", "op_weights", "model_outputs")
# Rows per encrypted call: each row is F ciphertexts of 16 KiB (N = 2048), so 16 rows of 30
# features stay in cache; 64 rows per call cost 25% more per row (bench/README.md).
_EXECUTE_CHUNK = 16


def _check_profile(profile) -> None:
    if not isinstance(profile, str) or profile not in _PROFILES:
        raise ValueError(f"profile must be one of {', '.join(map(repr, _PROFILES))}, "
                         f"found {profile!r}")


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
                threads: int = 0, out_of_range: str = "warn", security_level: int = 128,
                profile: str = "standard", max_partitions: int = 3):
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
        better attacks, for slightly larger keys and slower bootstraps). profile: "standard", or
        "ind-cpa-d" when decrypted results (or whether a result was wrong) may reach the server:
        every bootstrap fails with probability at most 2^-64 (p_error defaults to it; a larger
        p_error or global_p_error is refused) and the keys are chosen at 132 bits.
        max_partitions: up to this many parameter sets, one per group of lookups, each kept only
        if it saves 5% of the estimated cost (1: one set for the whole circuit; linear models
        have no lookup).
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
        _check_profile(profile)
        max_partitions = _max_partitions(max_partitions)
        self._compile_options = {"p_error": p_error, "global_p_error": global_p_error,
                                 "threads": int(threads), "out_of_range": out_of_range,
                                 "security_level": int(security_level),
                                 "profile": profile, "max_partitions": int(max_partitions)}
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
        state.pop("_shipment", None)  # in-memory keys and cluster futures: never pickled
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

    def _decision(self, X, fhe: str, client=None) -> np.ndarray:
        """The (de)quantized linear part [N, C], in mode fhe (on a Dask cluster: client)."""
        check_is_fitted(self, "sklearn_model_")
        self._check_mode(fhe)
        X = validate_data(self, X, dtype=np.float64, reset=False, order="C")
        chunk = self._execute_chunk()
        if client is not None:
            from fheml import distributed
            distributed.check_mode(fhe, client)
            return distributed.model_decision(self, self._fhe_model, X, client,
                                              self._compile_options.get("out_of_range", "warn"),
                                              chunk)
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
            security_level=o.get("security_level", 128), profile=o.get("profile", "standard"))


class _FheRegressor(RegressorMixin, _FheModel):
    def predict(self, X, fhe: str = "disable", client=None) -> np.ndarray:
        """Predictions [N] (or [N, C] for several targets), with the link applied. client: a
        dask.distributed Client to run fhe="execute" on its workers (fheml.distributed)."""
        d = self._decision(X, fhe, client)
        y = self._fhe_model.post_processing(d)
        return y.ravel() if self._single_output else y


class _FheClassifier(ClassifierMixin, _FheModel):
    def _link(self, n_outputs: int) -> str:
        return "identity"  # no probabilities (hinge losses); subclasses with them override

    def _has_proba(self) -> bool:
        return self._link(2) != "identity"

    def decision_function(self, X, fhe: str = "disable", client=None) -> np.ndarray:
        """Scores [N] for two classes (positive: classes_[1]), [N, C] for more."""
        d = self._decision(X, fhe, client)
        return d.ravel() if d.shape[1] == 1 else d

    @available_if(_has_proba)
    def predict_proba(self, X, fhe: str = "disable", client=None) -> np.ndarray:
        """Class probabilities [N, n_classes], computed on the client from decrypted scores."""
        d = self._decision(X, fhe, client)
        return self._fhe_model.post_processing(d)

    def predict(self, X, fhe: str = "disable", client=None) -> np.ndarray:
        """Class labels. client: a dask.distributed Client to run fhe="execute" on its workers
        (fheml.distributed); the secret key stays in this process."""
        d = self._decision(X, fhe, client)
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


# The networks live in fheml/_networks.py (they extend the classes above).
from fheml._networks import (MLPClassifier, MLPRegressor, NeuralNetClassifier,  # noqa: E402
                             NeuralNetRegressor)
