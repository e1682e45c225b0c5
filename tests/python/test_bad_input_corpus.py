"""The Python API's bad-input corpus: each entry is a call a user may get wrong, the exception
type it must raise and a fragment of the message that says what to do. A new clear error gets
its line here; a crash or a silent answer is a bug."""
import math

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from fheml import sklearn as fsk
from fheml.deployment import FHEModelClient, FHEModelDev, FHEModelServer


class Context:
    """One fitted-and-compiled model, one fitted-only, and a deployed pair with keys."""

    def __init__(self, root):
        X, y = load_iris(return_X_y=True)
        self.X = StandardScaler().fit_transform(X)
        self.y = y
        self.model = fsk.LogisticRegression(max_iter=1000).fit(self.X, y).compile(self.X)
        self.fitted = fsk.LogisticRegression(max_iter=1000).fit(self.X, y)
        self.root = root
        FHEModelDev(root / "m", self.model).save()
        self.client = FHEModelClient(root / "m")
        self.client.generate_private_and_evaluation_keys()
        self.server = FHEModelServer(root / "m")
        self.keys = self.client.get_serialized_evaluation_keys()
        self.request = self.client.quantize_encrypt_serialize(self.X[:2])
        self.reply = self.server.run(self.request, self.keys)


def _fit(n_bits):
    return lambda c: fsk.LogisticRegression(n_bits=n_bits, max_iter=1000).fit(c.X, c.y)


def _flip(data: bytes) -> bytes:
    b = bytearray(data)
    b[len(b) // 2] ^= 1
    return bytes(b)


# (id, call, exception type, message fragment)
CASES = [
    # Data.
    ("nan-row", lambda c: c.model.predict(np.full((1, 4), np.nan)), ValueError, "NaN"),
    ("inf-row", lambda c: c.model.predict(np.full((1, 4), np.inf)), ValueError, "infinity"),
    ("too-few-features", lambda c: c.model.predict(c.X[:, :3]), ValueError, "4 features"),
    ("3-d-input", lambda c: c.model.predict(c.X[None]), ValueError, "dim 3"),
    ("text-input", lambda c: c.model.predict(np.array([["a", "b", "c", "d"]])), ValueError,
     "could not convert"),
    ("empty-input", lambda c: c.model.predict(np.empty((0, 4))), ValueError, "0 sample"),
    # Modes and order of calls.
    ("unknown-mode", lambda c: c.model.predict(c.X[:1], fhe="gpu"), ValueError,
     "fhe must be 'disable', 'simulate' or 'execute'"),
    ("execute-before-compile", lambda c: c.fitted.predict(c.X[:1], fhe="execute"), ValueError,
     "call compile(X)"),
    ("run-integers-before-compile",
     lambda c: c.fitted.fhe_circuit.run_integers(c.fitted.quantize_input(c.X[:1]), "execute"),
     ValueError, "call compile(X)"),
    ("predict-before-fit", lambda c: fsk.LogisticRegression().predict(c.X), NotFittedError,
     "not fitted"),
    # n_bits.
    ("n-bits-float", _fit(2.5), ValueError, "n_bits must be an int or a dict"),
    ("n-bits-string", _fit("8"), ValueError, "n_bits must be an int or a dict"),
    ("n-bits-bool", _fit(True), ValueError, "n_bits must be an int or a dict"),
    ("n-bits-role-float", _fit({"model_inputs": 2.5}), ValueError,
     "n_bits['model_inputs'] must be an int, found 2.5"),
    ("n-bits-role-string", _fit({"model_inputs": "8"}), ValueError,
     "n_bits['model_inputs'] must be an int, found '8'"),
    ("n-bits-role-unknown", _fit({"weights": 8}), ValueError, "unknown role 'weights'"),
    ("n-bits-too-wide", _fit(40), ValueError, "must be in 2..16, found 40"),
    # compile.
    ("threads-huge", lambda c: c.fitted.compile(c.X, threads=1_000_000), ValueError,
     "threads must be at most 1024"),
    ("threads-negative", lambda c: c.fitted.compile(c.X, threads=-1), ValueError,
     "threads must be an int >= 0"),
    ("threads-float", lambda c: c.fitted.compile(c.X, threads=2.0), ValueError,
     "threads must be an int >= 0"),
    ("p-error-nan", lambda c: c.fitted.compile(c.X, p_error=math.nan), ValueError,
     "p_error must be in (0, 1), found nan"),
    ("p-error-zero", lambda c: c.fitted.compile(c.X, p_error=0.0), ValueError,
     "p_error must be in (0, 1), found 0"),
    ("p-error-one", lambda c: c.fitted.compile(c.X, p_error=1.0), ValueError,
     "p_error must be in (0, 1), found 1"),
    ("global-p-error-nan", lambda c: c.fitted.compile(c.X, global_p_error=math.nan), ValueError,
     "global_p_error must be in (0, 1)"),
    ("both-p-errors", lambda c: c.fitted.compile(c.X, p_error=1e-5, global_p_error=1e-5),
     ValueError, "not both"),
    ("max-partitions-zero", lambda c: c.fitted.compile(c.X, max_partitions=0), ValueError,
     "max_partitions must be an int in 1..8"),
    ("max-partitions-float", lambda c: c.fitted.compile(c.X, max_partitions=2.0), ValueError,
     "max_partitions must be an int in 1..8"),
    ("security-level-130", lambda c: c.fitted.compile(c.X, security_level=130), ValueError,
     "security_level must be 128 or 132"),
    ("out-of-range-policy", lambda c: c.fitted.compile(c.X, out_of_range="ignore"), ValueError,
     "out_of_range must be one of"),
    ("out-of-range-raise",
     lambda c: c.fitted.compile(c.X, out_of_range="raise").predict(c.X[:1] * 1e9), ValueError,
     "refused (out_of_range=\"raise\")"),
    # Deployment.
    ("keys-before-keygen", lambda c: FHEModelClient(c.root / "m").get_serialized_evaluation_keys(),
     RuntimeError, "no keys yet"),
    ("key-id-before-keygen", lambda c: FHEModelClient(c.root / "m").key_id, RuntimeError,
     "no keys yet"),
    ("missing-artifacts", lambda c: FHEModelClient(c.root / "nowhere"), ValueError, "cannot read"),
    ("client-wrong-width", lambda c: c.client.quantize_encrypt_serialize(c.X[:1, :2]), ValueError,
     "takes 4"),
    ("client-nan", lambda c: c.client.quantize_encrypt_serialize(np.full((1, 4), np.nan)),
     ValueError, "NaN"),
    ("client-policy", lambda c: FHEModelClient(c.root / "m", out_of_range="loud"), ValueError,
     "out_of_range must be 'warn', 'raise' or 'clip'"),
    ("truncated-request", lambda c: c.server.run(c.request[:-40], c.keys), ValueError,
     "truncated"),
    ("flipped-request", lambda c: c.server.run(_flip(c.request), c.keys), ValueError, "checksum"),
    ("request-as-keys", lambda c: c.server.run(c.request, c.request), ValueError,
     "EvaluationKeys"),
    ("empty-keys", lambda c: c.server.run(c.request, b""), ValueError, "empty input"),
    ("truncated-reply", lambda c: c.client.predict(c.reply[:-3]), ValueError, "truncated"),
    ("flipped-reply", lambda c: c.client.predict(_flip(c.reply)), ValueError, "checksum"),
    ("request-as-reply", lambda c: c.client.predict(c.request), ValueError, "EncryptedOutputs"),
]


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    return Context(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("call, error, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(context, call, error, fragment):
    with pytest.raises(error) as raised:
        call(context)
    assert fragment in str(raised.value), str(raised.value)
