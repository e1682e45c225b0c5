"""The README's deployment section, run as written: its Python blocks (save, call) and its
`fheml serve` command, in a scratch directory."""
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = os.environ.get("FHEML_BUILD_DIR")


def _section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


@pytest.mark.skipif(BUILD is None, reason="FHEML_BUILD_DIR not set (scripts/test.sh sets it)")
def test_deployment_section_runs_as_written(tmp_path):
    section = _section("Deployment: save, serve, call")
    save, call = _blocks(section, "python")
    (serve,) = _blocks(section, "sh")
    command = shlex.split(serve.split("#")[0])
    assert command[:2] == ["./build/fheml", "serve"] and command[-2] == "--port"
    port = int(command[-1])
    with socket.socket() as s:  # the README's port must be free here
        if s.connect_ex(("127.0.0.1", port)) == 0:
            pytest.skip(f"port {port} is in use on this machine")

    subprocess.run([sys.executable, "-c", save], cwd=tmp_path, check=True)
    assert (tmp_path / "cancer_model" / "server.fheml").exists()
    server = subprocess.Popen([str(Path(BUILD) / "fheml"), *command[1:]], cwd=tmp_path,
                              stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        out = subprocess.run([sys.executable, "-c", call], cwd=tmp_path, check=True,
                             capture_output=True, text=True).stdout
    finally:
        server.terminate()
        server.wait(timeout=10)
    # Five labels, then their probabilities.
    assert re.match(r"\[[01] [01] [01] [01] [01]\] \[\[", out), out
    assert (tmp_path / "cancer_keys" / "client.key").exists()
    assert list((tmp_path / "cancer_model" / "keys").iterdir())  # the server kept the keys


def test_tree_tutorial_runs_as_written(tmp_path):
    section = _section("Tree models: decision trees, forests, gradient boosting, XGBoost, LightGBM")
    (tutorial, ) = _blocks(section, "python")
    script = tmp_path / "tree_tutorial.py"
    script.write_text(tutorial)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    float_accuracy, circuit_accuracy = map(float, lines[0].split())
    assert circuit_accuracy >= float_accuracy - 0.03  # one split of 171 rows: a row is 0.6 point
    assert "concrete_ml_bootstraps" in lines[-1]


def test_network_tutorial_runs_as_written(tmp_path):
    pytest.importorskip("torch")
    (code,) = _blocks(_section("Neural networks: PyTorch and ONNX"), "python")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    float_acc, fhe_acc = map(float, out[1].split())
    assert fhe_acc >= float_acc - 0.01
    assert int(out[-1]) == 8  # one bootstrap per hidden neuron


@pytest.mark.skipif(BUILD is None, reason="FHEML_BUILD_DIR not set (scripts/test.sh sets it)")
def test_scaling_out_section_runs_as_written(tmp_path):
    import signal

    pytest.importorskip("distributed")
    from fheml.deployment import FHEModelClient, FHEModelHTTPClient

    section = _section("Scaling out: a Dask cluster, a fleet of servers")
    (dask_block,) = _blocks(section, "python")
    (fleet,) = _blocks(section, "sh")
    # The Dask example: a file (its workers are processes that import the main module).
    (tmp_path / "dask_predict.py").write_text(dask_block)
    out = subprocess.run([sys.executable, "dask_predict.py"], cwd=tmp_path, check=True,
                         capture_output=True, text=True, timeout=600).stdout
    labels = re.findall(r"[01]", out.split("[", 1)[1])
    assert len(labels) == 32, out

    # The fleet: two `fheml serve` on the model the deployment section saves, one key directory.
    ports = [int(p) for p in re.search(r"for port in ([\d ]+);", fleet).group(1).split()]
    for port in ports:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} is in use on this machine")
    save, _ = _blocks(_section("Deployment: save, serve, call"), "python")
    subprocess.run([sys.executable, "-c", save], cwd=tmp_path, check=True)
    shell = subprocess.Popen(["bash", "-c", fleet.replace("./build/fheml",
                                                          str(Path(BUILD) / "fheml"))],
                             cwd=tmp_path, start_new_session=True)
    try:
        servers = [FHEModelHTTPClient(f"http://127.0.0.1:{port}") for port in ports]
        for server in servers:
            for _ in range(200):
                try:
                    server.health()
                    break
                except OSError:
                    time.sleep(0.05)
        client = FHEModelClient(tmp_path / "cancer_model", key_dir=tmp_path / "cancer_keys")
        client.generate_private_and_evaluation_keys()
        key_id = servers[0].upload_evaluation_keys(client.get_serialized_evaluation_keys())
        assert (tmp_path / "shared_keys" / f"{key_id}.keys").exists()
        import numpy as np
        X = np.random.default_rng(0).normal(size=(3, 30))
        replies = [s.run(key_id, client.quantize_encrypt_serialize(X)) for s in servers]
        assert np.array_equal(client.predict(replies[0]), client.predict(replies[1]))
    finally:
        try:
            os.killpg(shell.pid, signal.SIGTERM)  # the shell's background servers
        except ProcessLookupError:
            pass
        shell.wait(timeout=10)
