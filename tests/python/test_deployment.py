"""fheml.deployment: artifacts, client and server, across languages and over HTTP.

Tests that need the C++ build (the example that writes artifacts, the `fheml serve` binary)
read its location from FHEML_BUILD_DIR, which scripts/test.sh sets; without it they skip.
"""
import json
import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.preprocessing import StandardScaler

from fheml import sklearn as fsk
from fheml.deployment import (FHEModelClient, FHEModelDev, FHEModelHTTPClient, FHEModelServer,
                              FHEServerError)

REPO = Path(__file__).resolve().parents[2]
BUILD = os.environ.get("FHEML_BUILD_DIR")
needs_build = pytest.mark.skipif(BUILD is None, reason="FHEML_BUILD_DIR not set (scripts/test.sh "
                                                       "sets it)")


def _data(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def iris_model():
    X, y = _data(load_iris)
    return fsk.LogisticRegression(n_bits=8, max_iter=1000).fit(X, y).compile(X), X


@pytest.mark.parametrize("make", [
    lambda: (fsk.LogisticRegression(max_iter=1000), load_iris, "predict_proba"),
    lambda: (fsk.LogisticRegression(), load_breast_cancer, "predict_proba"),
    lambda: (fsk.LinearSVC(), load_breast_cancer, "decision_function"),
    lambda: (fsk.Ridge(), load_diabetes, "predict"),
    lambda: (fsk.PoissonRegressor(), load_diabetes, "predict"),
], ids=["iris-logistic", "cancer-logistic", "cancer-svc", "diabetes-ridge", "diabetes-poisson"])
def test_client_server_round_trip_equals_the_model(make, tmp_path):
    model, loader, method = make()
    X, y = _data(loader)
    model.fit(X, y).compile(X)
    FHEModelDev(tmp_path / "model", model).save()
    client = FHEModelClient(tmp_path / "model", key_dir=tmp_path / "keys")
    client.generate_private_and_evaluation_keys()
    server = FHEModelServer(tmp_path / "model")
    assert server.circuit_id == client.circuit_id
    reply = server.run(client.quantize_encrypt_serialize(X[:20]),
                       client.get_serialized_evaluation_keys())
    expected = getattr(model, method)(X[:20], fhe="disable")
    np.testing.assert_array_equal(client.deserialize_decrypt_dequantize(reply), expected)
    np.testing.assert_array_equal(client.predict(reply), model.predict(X[:20]))


@pytest.mark.parametrize("make", [
    lambda: (fsk.RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0),
             load_breast_cancer, "predict_proba"),
    lambda: (fsk.GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0),
             load_iris, "predict_proba"),
    lambda: (fsk.DecisionTreeRegressor(max_depth=4, random_state=0), load_diabetes, "predict"),
], ids=["cancer-forest", "iris-boosting", "diabetes-tree"])
def test_tree_models_deploy(make, tmp_path):
    """Tree models (thermometer-coded inputs, bootstrapped leaves) through the artifacts."""
    model, loader, method = make()
    X, y = _data(loader)
    model.fit(X, y).compile(X)
    FHEModelDev(tmp_path / "model", model).save()
    client = FHEModelClient(tmp_path / "model", key_dir=tmp_path / "keys")
    client.generate_private_and_evaluation_keys()
    reply = FHEModelServer(tmp_path / "model").run(client.quantize_encrypt_serialize(X[:6]),
                                                   client.get_serialized_evaluation_keys())
    np.testing.assert_array_equal(client.deserialize_decrypt_dequantize(reply),
                                  getattr(model, method)(X[:6], fhe="disable"))
    np.testing.assert_array_equal(client.predict(reply), model.predict(X[:6]))
    # The float width is asked for, not the thermometer code's.
    with pytest.raises(ValueError, match=f"takes {X.shape[1]}$"):
        client.quantize_encrypt_serialize(np.zeros((1, X.shape[1] + 1)))


def test_keys_persist_and_the_secret_key_stays_with_the_client(iris_model, tmp_path):
    model, X = iris_model
    FHEModelDev(tmp_path / "model", model).save()
    client = FHEModelClient(tmp_path / "model", key_dir=tmp_path / "keys")
    client.generate_private_and_evaluation_keys()
    keys = client.get_serialized_evaluation_keys()
    reply = FHEModelServer(tmp_path / "model").run(client.quantize_encrypt_serialize(X[:5]), keys)
    secret = (tmp_path / "keys" / "client.key").read_bytes()
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / "client.key").st_mode) == 0o600
    # A later session loads the same keys and decrypts the earlier reply.
    again = FHEModelClient(tmp_path / "model", key_dir=tmp_path / "keys")
    again.generate_private_and_evaluation_keys()
    assert again.get_serialized_evaluation_keys() == keys
    np.testing.assert_array_equal(again.predict(reply), model.predict(X[:5]))
    # No server-side bytes hold the secret key's coefficients (a 64-byte run of them).
    needle = secret[-16 - 64:-16]
    for path in (tmp_path / "model").iterdir():
        assert needle not in path.read_bytes(), path
    assert needle not in keys
    assert needle not in client.quantize_encrypt_serialize(X[:2])


def test_keys_of_another_model_are_refused_and_the_secret_key_is_kept(iris_model, tmp_path):
    model, X = iris_model
    FHEModelDev(tmp_path / "a", model).save()
    other = fsk.LogisticRegression(n_bits=7, max_iter=1000).fit(X, model.predict(X)).compile(X)
    FHEModelDev(tmp_path / "b", other).save()
    client = FHEModelClient(tmp_path / "a", key_dir=tmp_path / "keys")
    client.generate_private_and_evaluation_keys()
    secret = (tmp_path / "keys" / "client.key").read_bytes()
    with pytest.raises(ValueError, match="were made for model"):
        FHEModelClient(tmp_path / "b", key_dir=tmp_path / "keys").generate_private_and_evaluation_keys()
    # Evaluation keys lost: made again from the kept secret key.
    (tmp_path / "keys" / "evaluation.keys").unlink()
    again = FHEModelClient(tmp_path / "a", key_dir=tmp_path / "keys")
    again.generate_private_and_evaluation_keys()
    assert (tmp_path / "keys" / "client.key").read_bytes() == secret
    # force: the old secret key moves aside, never deleted.
    again.generate_private_and_evaluation_keys(force=True)
    assert (tmp_path / "keys" / "client.key.replaced.1").read_bytes() == secret
    assert (tmp_path / "keys" / "client.key").read_bytes() != secret


def test_bad_inputs_are_refused(iris_model, tmp_path):
    model, X = iris_model
    with pytest.raises(ValueError, match="compiled model"):
        FHEModelDev(tmp_path / "m0", fsk.Ridge().fit(X, X[:, 0])).save()
    FHEModelDev(tmp_path / "model", model).save()
    client = FHEModelClient(tmp_path / "model")
    with pytest.raises(RuntimeError, match="no keys yet"):
        client.get_serialized_evaluation_keys()
    client.generate_private_and_evaluation_keys()
    server = FHEModelServer(tmp_path / "model")
    keys = client.get_serialized_evaluation_keys()
    request = client.quantize_encrypt_serialize(X[:3])
    with pytest.raises(ValueError, match="4 takes|takes 4"):
        client.quantize_encrypt_serialize(X[:3, :2])
    with pytest.raises(ValueError, match="NaN"):
        client.quantize_encrypt_serialize(np.full((1, 4), np.nan))
    with pytest.raises(ValueError, match="truncated"):
        server.run(request[:-40], keys)
    flipped = bytearray(request)
    flipped[len(flipped) // 2] ^= 0x10
    with pytest.raises(ValueError, match="checksum"):
        server.run(bytes(flipped), keys)
    with pytest.raises(ValueError, match="EvaluationKeys"):
        server.run(request, request)
    # A reply of another model is refused by the client.
    other = fsk.Ridge().fit(X, X[:, 0]).compile(X)
    FHEModelDev(tmp_path / "other", other).save()
    other_client = FHEModelClient(tmp_path / "other")
    other_client.generate_private_and_evaluation_keys()
    other_reply = FHEModelServer(tmp_path / "other").run(
        other_client.quantize_encrypt_serialize(X[:3]), other_client.get_serialized_evaluation_keys())
    with pytest.raises(ValueError, match="made for circuit"):
        client.deserialize_decrypt_dequantize(other_reply)
    with pytest.raises(ValueError, match="cannot read"):
        FHEModelServer(tmp_path / "missing")
    # Still serving.
    np.testing.assert_array_equal(client.predict(server.run(request, keys)), model.predict(X[:3]))


@needs_build
def test_artifacts_written_by_cpp_load_in_python(tmp_path):
    example = Path(BUILD) / "example_linear_model"
    subprocess.run([example, tmp_path], check=True, capture_output=True)
    rows = np.loadtxt(REPO / "tests/data/sklearn/breast_cancer_test.csv", delimiter=",")[:, :-1]
    expected = np.loadtxt(tmp_path / "expected_proba.txt").reshape(-1, 2)
    client = FHEModelClient(tmp_path)
    assert client.metadata["classes"] == [0, 1]
    client.generate_private_and_evaluation_keys()
    reply = FHEModelServer(tmp_path).run(client.quantize_encrypt_serialize(rows),
                                         client.get_serialized_evaluation_keys())
    np.testing.assert_array_equal(client.deserialize_decrypt_dequantize(reply), expected)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def wine_forest():
    X, y = _data(load_wine)
    model = fsk.RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0)
    return model.fit(X, y).compile(X), X


@needs_build
@pytest.mark.parametrize("fixture", ["iris_model", "wine_forest"])
def test_http_server_serves_python_artifacts(fixture, request, tmp_path):
    """Artifacts written by Python, served by the C++ `fheml serve`, called by the Python client:
    a linear model and a tree ensemble (bootstraps on the server)."""
    model, X = request.getfixturevalue(fixture)
    FHEModelDev(tmp_path / "model", model).save()
    port = _free_port()
    server = subprocess.Popen(
        [Path(BUILD) / "fheml", "serve", tmp_path / "model", "--port", str(port),
         "--key-dir", tmp_path / "server-keys"], stderr=subprocess.PIPE)
    try:
        http = FHEModelHTTPClient(f"http://127.0.0.1:{port}")
        for _ in range(100):
            try:
                assert http.health()["status"] == "ok"
                break
            except OSError:
                time.sleep(0.05)
        client = FHEModelClient(tmp_path / "model", key_dir=tmp_path / "keys")
        client.generate_private_and_evaluation_keys()
        assert http.info()["circuit_id"] == client.circuit_id
        key_id = http.upload_evaluation_keys(client.get_serialized_evaluation_keys())
        reply = http.run(key_id, client.quantize_encrypt_serialize(X[:10]))
        np.testing.assert_array_equal(client.predict(reply), model.predict(X[:10]))
        with pytest.raises(FHEServerError) as e:
            http.run("0" * 32, client.quantize_encrypt_serialize(X[:1]))
        assert e.value.status == 404
        with pytest.raises(FHEServerError) as e:
            http.run(key_id, b"not a ciphertext")
        assert e.value.status == 400 and "magic" in e.value.message
    finally:
        server.terminate()
        server.wait(timeout=10)


def _serve(model_dir, key_dir):
    port = _free_port()
    process = subprocess.Popen([Path(BUILD) / "fheml", "serve", model_dir, "--port", str(port),
                                "--key-dir", key_dir], stderr=subprocess.PIPE)
    http = FHEModelHTTPClient(f"http://127.0.0.1:{port}")
    for _ in range(200):
        try:
            assert http.health()["status"] == "ok"
            return process, http
        except OSError:
            time.sleep(0.05)
    process.terminate()
    raise AssertionError(f"fheml serve did not start: {process.stderr.read().decode()}")


@needs_build
def test_a_fleet_of_servers_shares_one_key_store(wine_forest, tmp_path):
    """Two `fheml serve` processes behind one address (a load balancer's pool) on one key
    directory: keys uploaded to either serve requests on both; concurrent uploads of the same
    keys to both leave one whole file."""
    from concurrent.futures import ThreadPoolExecutor
    model, X = wine_forest
    FHEModelDev(tmp_path / "model", model).save()
    fleet = [_serve(tmp_path / "model", tmp_path / "shared-keys") for _ in range(2)]
    try:
        (_, a), (_, b) = fleet
        client = FHEModelClient(tmp_path / "model", key_dir=tmp_path / "keys")
        client.generate_private_and_evaluation_keys()
        keys = client.get_serialized_evaluation_keys()
        key_id = a.upload_evaluation_keys(keys)
        reply = b.run(key_id, client.quantize_encrypt_serialize(X[:4]))  # never uploaded to b
        np.testing.assert_array_equal(client.predict(reply), model.predict(X[:4]))
        # Another client's keys, uploaded to both at once, several times.
        other = FHEModelClient(tmp_path / "model", key_dir=tmp_path / "other-keys")
        other.generate_private_and_evaluation_keys()
        other_keys = other.get_serialized_evaluation_keys()
        with ThreadPoolExecutor(6) as pool:
            ids = set(pool.map(lambda i: fleet[i % 2][1].upload_evaluation_keys(other_keys),
                               range(6)))
        assert len(ids) == 1
        [other_id] = ids
        assert sorted(p.name for p in (tmp_path / "shared-keys").iterdir()) == \
            sorted([f"{key_id}.keys", f"{other_id}.keys"])
        assert (tmp_path / "shared-keys" / f"{other_id}.keys").read_bytes() == other_keys
        for _, server in fleet:
            reply = server.run(other_id, other.quantize_encrypt_serialize(X[4:6]))
            np.testing.assert_array_equal(other.predict(reply), model.predict(X[4:6]))
    finally:
        for process, _ in fleet:
            process.terminate()
            process.wait(timeout=10)
