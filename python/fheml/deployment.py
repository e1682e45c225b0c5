"""Deploying a compiled model: artifacts, client, server, and the HTTP server's client.

    dev = FHEModelDev("model_dir", model); dev.save()          # the model's maker
    client = FHEModelClient("model_dir", key_dir="keys")       # the key holder
    client.generate_private_and_evaluation_keys()
    keys = client.get_serialized_evaluation_keys()             # send once
    request = client.quantize_encrypt_serialize(X)
    reply = FHEModelServer("model_dir").run(request, keys)     # or FHEModelHTTPClient(...)
    proba = client.deserialize_decrypt_dequantize(reply)

The artifact files (``server.fheml``: the circuit and its weights; ``client.fheml``:
quantizers, encodings, parameters, post-processing, no weights) are the C++ library's versioned
formats: the C++ ``fheml::deploy`` classes and ``fheml serve`` read the same files. The secret
key never leaves the client: it is written only to ``key_dir``, readable by its owner only.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from fheml import _core
from fheml import __version__

__all__ = ["FHEModelClient", "FHEModelDev", "FHEModelHTTPClient", "FHEModelServer",
           "FHEServerError"]


class FHEModelDev:
    """Saves a compiled fheml model as deployment artifacts in `path`."""

    def __init__(self, path, model):
        self.path = Path(path)
        self.model = model

    def save(self) -> Path:
        model = self.model
        if not getattr(model, "_compiled", False):
            raise ValueError("FHEModelDev needs a compiled model: call model.compile(X) first")
        classes = getattr(model, "classes_", None)
        metadata = {
            "estimator": type(model).__name__,
            "fheml_version": __version__,
            "classes": None if classes is None else np.asarray(classes).tolist(),
            "single_output": bool(getattr(model, "_single_output", False)),
            "n_features_in": int(model.n_features_in_),
        }
        model.fhe_circuit.save(os.fspath(self.path), json.dumps(metadata))
        return self.path


class FHEModelClient:
    """The key holder: keys, encryption of inputs, decryption of results.

    key_dir: where the keys are kept between sessions (created owner-only; every key file is
    readable by its owner only). None keeps them in memory.
    out_of_range: input values beyond the model's calibrated range are clipped to its ends, with a
    fheml.InputRangeWarning ("warn"), refused with a ValueError ("raise"), or silently ("clip").
    allow_readable_secret_key: load a secret key file its group or others can read (refused by
    default: whoever reads it decrypts everything made under it).
    """

    def __init__(self, path, key_dir=None, out_of_range: str = "warn",
                 allow_readable_secret_key: bool = False):
        self.path = Path(path)
        self.key_dir = None if key_dir is None else Path(key_dir)
        self._client = _core.Client(os.fspath(self.path),
                                    "" if key_dir is None else os.fspath(self.key_dir),
                                    out_of_range=out_of_range,
                                    allow_readable_secret_key=bool(allow_readable_secret_key))
        self.metadata = json.loads(self._client.metadata)

    @property
    def circuit_id(self) -> str:
        return self._client.circuit_id

    @property
    def key_id(self) -> str:
        """The secret key's id (16 hex digits): carried by every request and reply, checked
        when the server runs and when a reply is decrypted. Raises before keys exist."""
        return self._client.key_id

    def generate_private_and_evaluation_keys(self, force: bool = False) -> None:
        """Loads the keys from key_dir if they are there (refused, naming both models, when
        they are another model's; lost evaluation keys are made again from the kept secret
        key; a secret key file others can read is refused), else makes them. force=True moves
        existing keys aside (client.key.replaced.N), never deletes them."""
        self._client.generate_keys(force)

    def get_serialized_evaluation_keys(self) -> bytes:
        """The evaluation keys as they travel (seeded, compressed); no secret in them."""
        return self._client.evaluation_keys()

    def quantize_encrypt_serialize(self, X) -> bytes:
        X = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (rows of features), found {X.ndim} dimensions")
        if not np.all(np.isfinite(X)):
            raise ValueError("X holds NaN or infinite values: encrypted models take finite "
                             "values only")
        return self._client.quantize_encrypt_serialize(X)

    def deserialize_decrypt(self, serialized_result: bytes) -> np.ndarray:
        """The decrypted, dequantized decision values [N, C], before post-processing."""
        return self._client.deserialize_decrypt_dequantize(bytes(serialized_result))

    def deserialize_decrypt_dequantize(self, serialized_result: bytes) -> np.ndarray:
        """The model's outputs as scikit-learn's predict (regressors) or predict_proba
        (classifiers with probabilities) gives them; scores for the others."""
        y = self._client.post_processing(self.deserialize_decrypt(serialized_result))
        if self.metadata.get("single_output") or (self.metadata.get("classes") is not None
                                                  and y.shape[1] == 1):
            return y.ravel()
        return y

    def predict(self, serialized_result: bytes) -> np.ndarray:
        """Class labels (classifiers) or values (regressors) of a decrypted result."""
        d = self.deserialize_decrypt(serialized_result)
        classes = self.metadata.get("classes")
        if classes is None:
            y = self._client.post_processing(d)
            return y.ravel() if self.metadata.get("single_output") else y
        if d.shape[1] > 1:
            index = d.argmax(axis=1)
        else:  # one column: a score (above 0) or, post-processed into two, a probability
            y = self._client.post_processing(d)
            index = (y[:, 1] > y[:, 0]) if y.shape[1] == 2 else (d[:, 0] > 0)
        return np.asarray(classes)[index.astype(int)]


class FHEModelServer:
    """The server: loads server.fheml and runs on ciphertexts with evaluation keys only."""

    def __init__(self, path):
        self.path = Path(path)
        self._server = _core.Server(os.fspath(self.path))
        self._shipments = None  # what was scattered to Dask clusters (run(..., client=))
        self._server_bytes = None

    @property
    def circuit_id(self) -> str:
        return self._server.circuit_id

    def run(self, serialized_encrypted_quantized_data, serialized_evaluation_keys: bytes,
            client=None, split: str = "auto"):
        """The encrypted reply to a request (bytes), or the replies to a list of requests.

        client: a dask.distributed Client: the requests run on its workers, the circuit and the
        evaluation keys shipped to each worker once (fheml.distributed). split: "rows" (each
        request is a task), "bootstraps" (each request in turn, its bootstraps spread over the
        workers stage by stage, the linear parts run here), or "auto" (rows when there are at
        least as many requests as worker threads). The replies come back in the requests'
        order; a reply does not depend on the split.
        """
        single = isinstance(serialized_encrypted_quantized_data, (bytes, bytearray, memoryview))
        requests = ([serialized_encrypted_quantized_data] if single
                    else list(serialized_encrypted_quantized_data))
        keys = bytes(serialized_evaluation_keys)
        if client is None:
            replies = [self._server.run(bytes(r), keys) for r in requests]
        else:
            from fheml import distributed
            if self._server_bytes is None:
                data = (self.path / "server.fheml").read_bytes()
                if _core.Server.from_bytes(data).circuit_id != self.circuit_id:
                    raise ValueError(f"{self.path / 'server.fheml'} changed since this server "
                                     "loaded it: create a new FHEModelServer")
                self._server_bytes = data
                self._shipments = distributed._Shipments()
            if distributed.choose_split(split, len(requests), client) == "rows":
                replies = distributed.run_requests(self._server_bytes, keys, requests, client,
                                                   circuit_token=self.circuit_id,
                                                   shipments=self._shipments)
            else:
                key_id = self._server.evaluation_keys_id(keys)
                replies = [distributed.run_staged(self._server, self._server_bytes, keys,
                                                  bytes(r), key_id, client,
                                                  circuit_token=self.circuit_id,
                                                  shipments=self._shipments)
                           for r in requests]
        return replies[0] if single else replies


class FHEServerError(RuntimeError):
    """An error answer of `fheml serve`: status and the server's message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class FHEModelHTTPClient:
    """Talks to ``fheml serve ARTIFACT_DIR --port N``: upload evaluation keys once, then run
    encrypted inputs under the returned key id. Only the standard library is used."""

    def __init__(self, url: str, timeout: float = 300.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.url + path, data=body, method=method,
            headers={"Content-Type": "application/octet-stream"} if body is not None else {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            payload = e.read()
            try:
                message = json.loads(payload)["error"]
            except (ValueError, KeyError, TypeError):
                message = payload.decode("utf-8", "replace")
            raise FHEServerError(e.code, message) from None

    def health(self) -> dict:
        return json.loads(self._request("GET", "/health")[1])

    def info(self) -> dict:
        return json.loads(self._request("GET", "/info")[1])

    def upload_evaluation_keys(self, serialized_evaluation_keys: bytes) -> str:
        """Stores the keys on the server (memory and disk); returns their key id."""
        return json.loads(self._request("POST", "/keys", bytes(serialized_evaluation_keys))[1])[
            "key_id"]

    def run(self, key_id: str, serialized_encrypted_quantized_data: bytes) -> bytes:
        return self._request("POST", f"/run/{key_id}",
                             bytes(serialized_encrypted_quantized_data))[1]
