"""Networks: the C++ ONNX importer against onnxruntime, torch networks compiled end to end,
and every malformed model refused with a clear error."""
import io
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fheml import _core  # noqa: E402
from fheml.deployment import FHEModelClient, FHEModelDev, FHEModelServer  # noqa: E402
from fheml.onnx import compile_onnx_model, supported_ops  # noqa: E402
from fheml.torch import compile_torch_model, export_onnx  # noqa: E402


def _ort(model_bytes, X):
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.vstack([session.run(None, {name: x[None].astype(np.float32)})[0] for x in X])


def _train(net, X, y, epochs=300, lr=1e-2, seed=0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(Xt), yt).backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(Xtr)
    return scaler.transform(Xtr), scaler.transform(Xte), ytr, yte


@pytest.fixture(scope="module")
def cancer_mlp(cancer):
    Xtr, _, ytr, _ = cancer
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(30, 30), torch.nn.ReLU(), torch.nn.Linear(30, 30),
                              torch.nn.ReLU(), torch.nn.Linear(30, 2))
    return _train(net, Xtr, ytr)


# ---- the importer against onnxruntime (float graph, no quantization) ----

class Cnn(torch.nn.Module):
    """Conv + BatchNorm + relu, a residual add, Concat, GlobalAveragePool, flatten, gemm."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.conv3 = torch.nn.Conv2d(8, 6, 3, stride=2)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(6, 10)

    def forward(self, x):
        a = torch.relu(self.bn1(self.conv1(x)))
        b = torch.relu(self.conv2(a)) + a           # residual
        c = torch.cat([a, b], dim=1)                # concat
        d = torch.relu(self.conv3(c))
        return torch.softmax(self.fc(torch.flatten(self.pool(d), 1)), dim=1)


def _randomize_bn(net):
    torch.manual_seed(1)
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    return net.eval()


def test_mlp_cnn_residual_concat_match_onnxruntime(cancer, cancer_mlp):
    _, Xte, _, _ = cancer
    mlp = export_onnx(cancer_mlp, (30,))
    ours = compile_onnx_model(mlp, cancer[0])
    np.testing.assert_allclose(ours.float_forward(Xte[:20]), _ort(mlp, Xte[:20]), atol=1e-5,
                               rtol=1e-5)

    torch.manual_seed(0)
    cnn = _randomize_bn(Cnn())
    cnn_bytes = export_onnx(cnn, (1, 8, 8))
    X = load_digits().data.reshape(-1, 1, 8, 8) / 16.0
    model = compile_onnx_model(cnn_bytes, X[:200])
    info = model.import_info
    assert info["post_processing"] == "softmax"
    assert model.input_shape == (1, 1, 8, 8)
    np.testing.assert_allclose(model.float_forward(X[:10]), _ort(cnn_bytes, X[:10]), atol=1e-5)
    with torch.no_grad():
        reference = cnn(torch.tensor(X[:10], dtype=torch.float32)).numpy()
    np.testing.assert_allclose(model.float_forward(X[:10]), reference, atol=1e-5)


def _conv_bn_model(bn_after_relu: bool) -> bytes:
    """Conv -> BatchNormalization (folded) or Conv -> Relu -> BatchNormalization (kept as a
    multiply-add), then GlobalAveragePool, Flatten, Gemm, LogSoftmax; built by hand so that
    the BatchNormalization node is in the file (torch folds it at export)."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.normal(size=(3, 2, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(rng.normal(size=3).astype(np.float32), "b"),
            numpy_helper.from_array(rng.uniform(0.5, 1.5, 3).astype(np.float32), "gamma"),
            numpy_helper.from_array(rng.normal(size=3).astype(np.float32), "beta"),
            numpy_helper.from_array(rng.normal(size=3).astype(np.float32), "mean"),
            numpy_helper.from_array(rng.uniform(0.5, 2, 3).astype(np.float32), "var"),
            numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "fc"),
            numpy_helper.from_array(rng.normal(size=4).astype(np.float32), "fcb")]
    conv_out = "c"
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1])]
    if bn_after_relu:
        nodes.append(helper.make_node("Relu", ["c"], ["r"], name="relu"))
        conv_out = "r"
    nodes += [
        helper.make_node("BatchNormalization", [conv_out, "gamma", "beta", "mean", "var"], ["n"],
                         name="bn", epsilon=1e-3),
        helper.make_node("Relu", ["n"], ["n2"], name="relu2") if not bn_after_relu
        else helper.make_node("Identity", ["n"], ["n2"], name="id"),
        helper.make_node("GlobalAveragePool", ["n2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Dropout", ["f"], ["d"], name="drop"),
        helper.make_node("Gemm", ["d", "fc", "fcb"], ["o"], name="fc", transB=1),
        helper.make_node("LogSoftmax", ["o"], ["y"], name="logsoftmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.parametrize("after_relu", [False, True])
def test_batch_norm_folded_or_kept_matches_onnxruntime(after_relu):
    data = _conv_bn_model(after_relu)
    X = np.random.default_rng(1).normal(size=(30, 2, 5, 5))
    model = compile_onnx_model(data, X)
    notes = " ".join(model.import_info["notes"])
    assert ("folded into Conv" in notes) != after_relu
    assert "Dropout 'drop' dropped" in notes and model.import_info["post_processing"] == "log_softmax"
    np.testing.assert_allclose(model.float_forward(X[:8]), _ort(data, X[:8]), atol=1e-5)


def test_torch_shape_subgraphs_are_folded():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(12, 3)

        def forward(self, x):
            x = x.view(x.size(0), -1)             # Shape -> Gather -> Unsqueeze -> Concat
            return torch.clamp(self.fc(x), min=-1.0, max=2.0)  # Clip, min/max as inputs

    net = Net().eval()
    data = export_onnx(net, (3, 4))
    X = np.random.default_rng(2).normal(size=(16, 3, 4))
    model = compile_onnx_model(data, X)
    assert "shape" not in model.import_info["graph"].lower().replace("reshape", "")
    with torch.no_grad():
        ref = net(torch.tensor(X, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(model.float_forward(X), ref, atol=1e-5)


# ---- torch networks end to end ----

# Encrypted runs: exact rounding (the low bits cleared by bootstraps first), so that encrypted
# equals clear on every row; a small network keeps them short.
EXACT = {"n_bits": {"op_inputs": 3, "op_weights": 3}, "rounding_threshold_bits": 4,
         "rounding_method": "exact"}


@pytest.fixture(scope="module")
def small_mlp(cancer):
    Xtr, _, ytr, _ = cancer
    torch.manual_seed(0)
    return _train(torch.nn.Sequential(torch.nn.Linear(30, 6), torch.nn.ReLU(),
                                      torch.nn.Linear(6, 2)), Xtr, ytr)


def test_breast_cancer_mlp_defaults_keep_float_accuracy(cancer, cancer_mlp):
    Xtr, Xte, _, yte = cancer
    with torch.no_grad():
        float_pred = cancer_mlp(torch.tensor(Xte, dtype=torch.float32)).numpy().argmax(1)
    model = compile_torch_model(cancer_mlp, Xtr)  # the precision search
    clear = model.forward(Xte, fhe="disable")
    float_acc = (float_pred == yte).mean()
    assert (clear.argmax(1) == yte).mean() >= float_acc - 0.01
    # The search's agreement for a classifier is the lower of the class share and the R^2 of the
    # outputs on the rows it rated (here every calibration row: fewer than 500).
    with torch.no_grad():
        f = cancer_mlp(torch.tensor(Xtr, dtype=torch.float32)).numpy().astype(np.float64)
    q = model.forward(Xtr)
    r2 = 1 - np.mean((q - f) ** 2) / np.var(f)
    share = np.mean(q.argmax(1) == f.argmax(1))
    trials = model.precision_trials
    assert [t for t in trials if t["chosen"]][0]["agreement"] == pytest.approx(min(r2, share),
                                                                                abs=1e-4)
    chosen = [t for t in trials if t["chosen"]]
    assert len(chosen) == 1 and chosen[0]["agreement"] >= 0.99
    # the fastest that agrees: no faster trial reached 0.99
    assert all(t["agreement"] < 0.99 for t in trials
               if not t["error"] and t["estimated_latency_ms"] < chosen[0]["estimated_latency_ms"])
    assert model.fhe_circuit.statistics()["bootstraps"] == 60  # one per hidden neuron
    # Approximate rounding: near a tie a lookup reads its neighbour, as encrypted. With the
    # 5-bit lookups the search picks here the class moves on 1-3.5% of the rows (10 runs:
    # 0.965-0.994 agreement, median 0.977).
    sim = model.forward(Xte, fhe="simulate")
    assert (sim.argmax(1) == clear.argmax(1)).mean() >= 0.95


def test_encrypted_equals_clear_with_exact_rounding(cancer, small_mlp):
    Xtr, Xte, _, yte = cancer
    model = compile_torch_model(small_mlp, Xtr, **EXACT)
    clear = model.forward(Xte, fhe="disable")
    # 3-bit weights and activations on 6 neurons: coarse, far above the majority class (63%)
    assert (clear.argmax(1) == yte).mean() >= 0.85
    np.testing.assert_array_equal(model.forward(Xte[:3], fhe="execute"), clear[:3])
    np.testing.assert_array_equal(model.forward(Xte, fhe="simulate"), clear)
    # One parameter set for the whole circuit: the same quantized circuit, simulated alike.
    one = compile_torch_model(small_mlp, Xtr, max_partitions=1, **EXACT)
    assert len(one.fhe_circuit.statistics()["partitions"]) == 1
    np.testing.assert_array_equal(one.forward(Xte, fhe="simulate"), clear)


def test_approximate_rounding_encrypted_keeps_the_class(cancer, cancer_mlp):
    """Approximate rounding (the default, no extra bootstrap) reads a lookup's neighbouring
    entry near a tie, in simulate as encrypted: scores move, the class rarely does."""
    Xtr, Xte, _, _ = cancer
    model = compile_torch_model(cancer_mlp, Xtr, n_bits={"op_inputs": 4, "op_weights": 4},
                                rounding_threshold_bits=5)
    clear = model.forward(Xte, fhe="disable")
    sim = model.forward(Xte, fhe="simulate")
    assert (sim.argmax(1) == clear.argmax(1)).mean() >= 0.9
    enc = model.forward(Xte[:1], fhe="execute")
    assert enc.shape == (1, 2) and np.isfinite(enc).all()


def test_a_fixed_n_bits_far_from_float_warns(cancer, cancer_mlp):
    """A network compiled with n_bits too coarse for it says so (2 bits: agreement 0.82 on the
    calibration rows, measured 2026-12-04; 3 and 4 bits 0.97, which do not warn)."""
    Xtr, _, _, _ = cancer
    with pytest.warns(UserWarning, match="agrees with the float network only at 0.8"):
        coarse = compile_torch_model(cancer_mlp, Xtr, n_bits={"op_inputs": 2, "op_weights": 2},
                                     rounding_threshold_bits=5)
    assert 0.7 < coarse.calibration_agreement < 0.9
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*agrees with the float network")
        fine = compile_torch_model(cancer_mlp, Xtr, n_bits={"op_inputs": 4, "op_weights": 4},
                                   rounding_threshold_bits=5)
    assert fine.calibration_agreement > 0.95


def test_deployment_of_a_network(tmp_path, cancer, small_mlp):
    Xtr, Xte, _, _ = cancer
    model = compile_torch_model(small_mlp, Xtr, **EXACT)
    FHEModelDev(tmp_path / "model", model).save()
    client = FHEModelClient(tmp_path / "model", key_dir=tmp_path / "keys")
    client.generate_private_and_evaluation_keys()
    reply = FHEModelServer(tmp_path / "model").run(client.quantize_encrypt_serialize(Xte[:2]),
                                                   client.get_serialized_evaluation_keys())
    np.testing.assert_array_equal(client.deserialize_decrypt_dequantize(reply),
                                  model.decision_function(Xte[:2]))


def test_digits_cnn_compiles_and_runs_in_simulation():
    X, y = load_digits(return_X_y=True)
    X = X.reshape(-1, 1, 8, 8) / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, stride=2), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(36, 10))
    net = _train(net, Xtr, ytr, epochs=150, lr=2e-2)
    with torch.no_grad():
        float_acc = (net(torch.tensor(Xte, dtype=torch.float32)).numpy().argmax(1) == yte).mean()
    model = compile_torch_model(net, Xtr)  # the precision search, at its defaults
    clear = model.forward(Xte, fhe="disable")
    # Within 1 point of float (issue 12). With class agreement alone the search stopped at a
    # coarser candidate; the logits' R^2 >= 0.99 keeps this network's test accuracy (0.9533).
    assert (clear.argmax(1) == yte).mean() >= float_acc - 0.01
    # The search's agreement for a classifier is the lower of the class share and the R^2 of the
    # outputs on the rows it rated (500 of the calibration rows, evenly spaced).
    rows = Xtr[np.arange(500) * len(Xtr) // 500]
    with torch.no_grad():
        f = net(torch.tensor(rows, dtype=torch.float32)).numpy().astype(np.float64)
    q = model.forward(rows)
    r2 = 1 - np.mean((q - f) ** 2) / np.var(f)
    share = np.mean(q.argmax(1) == f.argmax(1))
    chosen = [t for t in model.precision_trials if t["chosen"]][0]
    assert chosen["agreement"] == pytest.approx(min(r2, share), abs=1e-4)
    assert r2 >= 0.99 and share >= 0.99
    sim = model.forward(Xte[:100], fhe="simulate")
    assert (sim.argmax(1) == clear[:100].argmax(1)).mean() >= 0.95


# ---- errors ----

def test_unsupported_ops_are_all_named():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"),
             helper.make_node("LSTM", ["a"], ["b"], name="my_lstm"),
             helper.make_node("Mod", ["b", "b"], ["c"], name="mod1"),
             helper.make_node("Mod", ["c", "c"], ["y"], name="mod2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    data = helper.make_model(graph).SerializeToString()
    with pytest.raises(ValueError, match=r"unsupported ops: LSTM \(node my_lstm\); Mod \(nodes mod1, mod2\)"):
        compile_onnx_model(data, np.zeros((2, 4)))
    assert "Gemm" in supported_ops() and "LSTM" not in supported_ops()


def test_softmax_inside_the_network_is_refused():
    nodes = [helper.make_node("Softmax", ["x"], ["a"], name="inner", axis=1),
             helper.make_node("Relu", ["a"], ["y"], name="r")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    with pytest.raises(ValueError, match="node 'inner'.*Softmax runs only as the last op"):
        compile_onnx_model(helper.make_model(graph).SerializeToString(), np.zeros((2, 4)))


def test_truncated_and_hostile_files(cancer_mlp, tmp_path):
    data = export_onnx(cancer_mlp, (30,))
    X = np.zeros((4, 30))
    for bad in (b"", data[: len(data) // 2], b"\x08\x07" + b"\xff" * 64, b"not an onnx file"):
        with pytest.raises(ValueError, match="ONNX import"):
            compile_onnx_model(bad, X)
    rng = np.random.default_rng(0)
    for _ in range(200):  # random byte flips: a clean error or a model, never a crash
        mutated = bytearray(data)
        for i in rng.integers(0, len(mutated), 4):
            mutated[i] = rng.integers(0, 256)
        try:
            _core.import_onnx(bytes(mutated))
        except ValueError:
            pass
    with pytest.raises(ValueError, match="no ONNX file"):
        compile_onnx_model(tmp_path / "missing.onnx", X)


def test_bad_inputs(cancer, cancer_mlp):
    Xtr, Xte, _, _ = cancer
    model = compile_torch_model(cancer_mlp, Xtr)
    with pytest.raises(ValueError, match=r"has shape \(3, 29\)"):
        model.forward(Xte[:3, :29])
    bad = Xte[:3].copy()
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match=r"X\[1, 4\] is NaN"):
        model.forward(bad)
    with pytest.raises(ValueError, match="fhe must be"):
        model.forward(Xte[:3], fhe="encrypted")
    with pytest.raises(ValueError, match="n_bits: unknown role"):
        compile_torch_model(cancer_mlp, Xtr, n_bits={"inputs": 8})
    with pytest.raises(ValueError, match="p_error must be in"):
        compile_torch_model(cancer_mlp, Xtr, p_error=float("nan"))
    with pytest.raises(ValueError, match="max_partitions must be an int in 1..8"):
        compile_torch_model(cancer_mlp, Xtr, max_partitions=0)
    with pytest.raises(ValueError, match="must be a torch.nn.Module"):
        compile_torch_model("net", Xtr)


@pytest.mark.skipif(not os.environ.get("FHEML_BUILD_DIR"), reason="FHEML_BUILD_DIR not set")
def test_compile_onnx_cli_artifacts_serve_python_clients(tmp_path, cancer, small_mlp):
    """`fheml compile-onnx` (no Python on the maker's side) -> artifacts the Python client and
    server use; the same precision in Python gives the same circuit's results."""
    Xtr, Xte, _, _ = cancer
    (tmp_path / "net.onnx").write_bytes(export_onnx(small_mlp, (30,)))
    np.save(tmp_path / "calib.npy", Xtr)
    cli = Path(os.environ["FHEML_BUILD_DIR"]) / "fheml"
    command = [str(cli), "compile-onnx", str(tmp_path / "net.onnx"), "--calibration",
               str(tmp_path / "calib.npy"), "--out", str(tmp_path / "model"), "--bits", "3",
               "--rounding-bits", "4", "--rounding", "exact"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "server.fheml" in done.stdout
    again = subprocess.run(command, capture_output=True, text=True)  # never overwritten silently
    assert again.returncode != 0 and "--force" in again.stderr
    client = FHEModelClient(tmp_path / "model", key_dir=tmp_path / "keys")
    client.generate_private_and_evaluation_keys()
    reply = FHEModelServer(tmp_path / "model").run(client.quantize_encrypt_serialize(Xte[:2]),
                                                   client.get_serialized_evaluation_keys())
    python_model = compile_torch_model(small_mlp, Xtr, **EXACT)
    np.testing.assert_array_equal(client.deserialize_decrypt_dequantize(reply),
                                  python_model.decision_function(Xte[:2]))
    strict = subprocess.run(command[:6] + [str(tmp_path / "strict"), *command[7:],
                                           "--profile", "ind-cpa-d"], capture_output=True, text=True)
    assert strict.returncode == 0, strict.stderr
    assert "profile: ind-cpa-d" in strict.stdout and "security: 132 bits" in strict.stdout
    # Approximate outputs through files: the same integers as the exact circuit's within 2^3.
    approx = subprocess.run(command[:6] + [str(tmp_path / "approx"), *command[7:],
                                           "--output-noise-bits", "4"], capture_output=True,
                            text=True)
    assert approx.returncode == 0, approx.stderr
    assert "outputs: approximate" in approx.stdout
    approx_client = FHEModelClient(tmp_path / "approx", key_dir=tmp_path / "approx_keys")
    approx_client.generate_private_and_evaluation_keys()
    approx_reply = FHEModelServer(tmp_path / "approx").run(
        approx_client.quantize_encrypt_serialize(Xte[:2]),
        approx_client.get_serialized_evaluation_keys())
    exact_integers = python_model.fhe_circuit.run_integers(python_model.quantize_input(Xte[:2]),
                                                           "disable")
    assert np.abs(approx_client.deserialize_decrypt(approx_reply) - exact_integers).max() <= 8
    # A reply of one circuit does not pass for the other's.
    with pytest.raises(ValueError):
        client.deserialize_decrypt(approx_reply)
    bad = subprocess.run([str(cli), "compile-onnx", str(tmp_path / "calib.npy"), "--calibration",
                          str(tmp_path / "calib.npy"), "--out", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "ONNX import" in bad.stderr
