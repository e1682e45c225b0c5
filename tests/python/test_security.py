"""Security levels through the Python API: 128 bits by default, 132 on request (issue 15)."""
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from fheml import sklearn as fsk


def test_a_132_bit_tree_meets_it_and_computes_the_same():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = fsk.DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    model.compile(X)
    assert model.fhe_circuit.statistics()["security_bits"] == 128
    assert "security: 128 bits" in model.fhe_circuit.report()
    model.compile(X, security_level=132)
    assert model.fhe_circuit.statistics()["security_bits"] == 132
    assert "security: 132 bits" in model.fhe_circuit.report()
    np.testing.assert_array_equal(model.predict(X[:4], fhe="execute"), model.predict(X[:4]))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_ind_cpa_d_profile_bounds_every_bootstrap_at_2m64_with_132_bit_keys():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    tree = fsk.DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    tree.compile(X)
    assert tree.fhe_circuit.statistics()["profile"] == "standard"
    assert "profile: standard" in tree.fhe_circuit.report()
    tree.compile(X, profile="ind-cpa-d")
    stats = tree.fhe_circuit.statistics()
    assert stats["profile"] == "ind-cpa-d" and stats["security_bits"] == 132
    report = tree.fhe_circuit.report()
    assert "profile: ind-cpa-d" in report and "security: 132 bits" in report
    np.testing.assert_array_equal(tree.predict(X[:2], fhe="execute"), tree.predict(X[:2]))
    # A tighter budget is kept; a looser one, or an unknown profile, is refused by name.
    tree.compile(X, profile="ind-cpa-d", global_p_error=2.0**-80)
    assert tree.fhe_circuit.statistics()["profile"] == "ind-cpa-d"
    with pytest.raises(ValueError, match="ind-cpa-d profile needs p_error <= 2\\^-64"):
        tree.compile(X, profile="ind-cpa-d", p_error=2.0**-40)
    with pytest.raises(ValueError, match="profile must be one of 'standard', 'ind-cpa-d'"):
        tree.compile(X, profile="IND-CPA-D")
    # Every estimator family takes it: a linear model and a network.
    linear = fsk.LogisticRegression().fit(X, y).compile(X, profile="ind-cpa-d")
    assert linear.fhe_circuit.statistics()["profile"] == "ind-cpa-d"
    mlp = fsk.MLPClassifier(hidden_layer_sizes=(8,), n_bits=3, max_iter=300,
                            random_state=0).fit(X, y)
    mlp.compile(X, profile="ind-cpa-d")
    assert mlp.fhe_circuit.statistics()["profile"] == "ind-cpa-d"


def _fnv1a(fields) -> int:
    """fheml's parameter fingerprint (tfhe::fingerprint): FNV-1a over a tag and the 9 fields."""
    h = 0xcbf29ce484222325
    for value in (0x66686d6c70627331, *fields):
        for byte in value.to_bytes(8, "little"):
            h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def _halve_lwe_noise(path):
    """Rewrites an artifact as a hostile maker could: the LWE noise halved (below the 128-bit
    curve), the envelope's fingerprint and BLAKE2b checksum made consistent again."""
    import hashlib
    import struct
    data = bytearray(path.read_bytes())
    fingerprint = int.from_bytes(data[12:20], "little")
    end = 28 + int.from_bytes(data[20:28], "little")
    for offset in range(28, min(end - 72, 4096)):
        if _fnv1a(struct.unpack_from("<9Q", data, offset)) == fingerprint:
            break
    else:
        raise AssertionError(f"no parameter block in {path}")
    noise = struct.unpack_from("<d", data, offset + 24)[0]
    struct.pack_into("<d", data, offset + 24, noise / 2)
    data[12:20] = _fnv1a(struct.unpack_from("<9Q", data, offset)).to_bytes(8, "little")
    data[end:end + 16] = hashlib.blake2b(bytes(data[:end]), digest_size=16).digest()
    path.write_bytes(bytes(data))


def test_insecure_artifacts_are_refused_by_every_python_entry_point(tmp_path):
    import pytest
    from fheml.deployment import FHEModelClient, FHEModelDev, FHEModelServer
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = fsk.DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y).compile(X)
    FHEModelDev(tmp_path / "m", model).save()
    FHEModelClient(tmp_path / "m").generate_private_and_evaluation_keys()  # loads before
    for name in ("client.fheml", "server.fheml"):
        _halve_lwe_noise(tmp_path / "m" / name)
    with pytest.raises(ValueError, match="below the 128-bit security curve"):
        FHEModelClient(tmp_path / "m")
    with pytest.raises(ValueError, match="below the 128-bit security curve"):
        FHEModelServer(tmp_path / "m")
