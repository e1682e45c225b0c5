"""Encrypted batch inference on a Dask cluster (``pip install 'fheml[dask]'``).

    from dask.distributed import Client, LocalCluster
    dask_client = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    model.predict(X, fhe="execute", client=dask_client)       # a compiled fheml model, here
    FHEModelServer("model").run(requests, keys, client=dask_client)   # a deployed model's server

The caller encrypts and decrypts; the workers only compute. What travels: the server circuit
(``server.fheml``'s bytes: weights, no secret) and the evaluation keys are scattered to every
worker once (``broadcast``; the caller keeps their futures, so later calls send nothing again),
and each task carries one chunk of ciphertexts and returns its encrypted reply. Dask's active
memory manager (on by default) may drop a worker's copy between calls; the next task there then
fetches the bytes again from a peer (``dask_client.amm.stop()`` keeps every copy). A worker
process checks and decompresses a circuit and a key set once and keeps them (the last
``KEPT_KEY_SETS`` key sets) for every later task. The secret key never leaves the caller's
process.

Work is split at one of two units:

- **rows** (many rows: at least one per worker thread): chunks of ``rows_per_task`` samples, as
  many tasks as keep every worker thread busy (each task runs on one thread: start workers with
  ``threads_per_worker`` = their cores);
- **bootstraps** (fewer rows than worker threads, e.g. one large CNN sample): the caller's
  process runs the circuit's linear parts (no keys needed) and, at each stage (level of
  independent bootstraps), sends that stage's ciphertexts in parts to the workers, which
  key-switch and bootstrap them; the next stage starts when all parts are back. A reply is the
  one a single server would give, bit for bit. What travels per bootstrap: one big-key
  ciphertext each way (8 (kN + 1) bytes).

A task whose worker dies is run again on another worker by Dask's scheduler (its data travels
inside the task, so nothing is lost with the worker); results are collected by index, so every
row and every bootstrap comes back exactly once. The circuit and keys are on every worker, so a
run survives the loss of any worker but the last.
"""
from __future__ import annotations

import collections
import hashlib
import math
import threading
import uuid
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fheml import _core

__all__ = ["KEPT_KEY_SETS", "default_rows_per_task", "run_requests", "run_staged",
           "worker_loads"]

# Decompressed key sets a worker process keeps (each is tens to hundreds of MiB in memory).
KEPT_KEY_SETS = 4
# A stage is cut in parts of at least this many bootstraps (a bootstrap costs ~10-20 ms, a Dask
# task a few ms) and at most this many bytes (Dask warns about larger task payloads; smaller
# parts also retry cheaply).
MIN_BOOTSTRAPS_PER_TASK = 2
MAX_STAGE_BYTES_PER_TASK = 8 << 20


def _distributed():
    try:
        import distributed
    except ImportError as e:  # an optional extra
        raise ImportError("fheml.distributed needs dask.distributed: "
                          "pip install 'fheml[dask]'") from e
    return distributed


# --- Worker side: what one worker process has loaded, by token.

_lock = threading.Lock()
_servers: dict[str, Any] = {}
_keys: collections.OrderedDict[tuple[str, str], Any] = collections.OrderedDict()
_loads: collections.Counter = collections.Counter()


def worker_loads() -> dict[str, int]:
    """How many times this process loaded each circuit ("circuit:<token>") and key set
    ("keys:<token>"): 1 each, however many tasks ran (``dask_client.run(worker_loads)``); and
    the parts of split runs it computed ("stage-parts") with their bootstraps ("bootstraps")."""
    with _lock:
        return dict(_loads)


def _server(circuit_token: str, server_bytes: bytes):
    with _lock:
        server = _servers.get(circuit_token)
        if server is None:
            server = _core.Server.from_bytes(server_bytes)
            _servers[circuit_token] = server
            _loads[f"circuit:{circuit_token}"] += 1
        return server


def _evaluation_keys(server, circuit_token: str, keys_token: str, keys_bytes: bytes):
    # Under the lock: tasks that start together load a key set once, not once each.
    with _lock:
        entry = (circuit_token, keys_token)
        keys = _keys.get(entry)
        if keys is None:
            keys = server.load_evaluation_keys(keys_bytes)
            _keys[entry] = keys
            _loads[f"keys:{keys_token}"] += 1
            while len(_keys) > KEPT_KEY_SETS:
                _keys.popitem(last=False)
        else:
            _keys.move_to_end(entry)
        return keys


def _run_chunk(circuit_token: str, server_bytes: bytes, keys_token: str, keys_bytes: bytes,
               request: bytes, threads: int) -> bytes:
    """One task: a chunk of encrypted rows through the circuit (bytes in, bytes out)."""
    server = _server(circuit_token, server_bytes)
    keys = _evaluation_keys(server, circuit_token, keys_token, keys_bytes)
    return server.run(request, keys, threads)


def _run_stage_part(circuit_token: str, server_bytes: bytes, keys_token: str, keys_bytes: bytes,
                    ciphertexts: np.ndarray, lookups: np.ndarray, key_id: str,
                    threads: int) -> np.ndarray:
    """One task of a split run: a part of one stage's bootstraps."""
    server = _server(circuit_token, server_bytes)
    keys = _evaluation_keys(server, circuit_token, keys_token, keys_bytes)
    out = server.run_stage(ciphertexts, lookups, keys, key_id, threads)
    with _lock:
        _loads["stage-parts"] += 1
        _loads["bootstraps"] += len(ciphertexts)
    return out


# --- Caller side.

class _Shipments:
    """Futures of what was scattered to a cluster, kept so that later runs send nothing again
    (the data stays on the workers while a future to it is held)."""

    def __init__(self):
        self._held: dict[tuple[int, str], tuple[Any, Any]] = {}

    def get(self, dask_client, name: str, data: bytes):
        held = self._held.get((id(dask_client), name))
        if held is not None and held[0] is dask_client and held[1].status == "finished":
            return held[1]
        # A dict names the Dask key: the same name is the same content (names carry a hash or
        # an id of it), so a worker that joins later fetches it from a peer by that name.
        future = dask_client.scatter({name: data}, broadcast=True)[name]
        self._held[(id(dask_client), name)] = (dask_client, future)
        return future


def _ship(dask_client, server_bytes: bytes, evaluation_keys: bytes, circuit_token: str | None,
          keys_token: str | None, shipments: _Shipments | None):
    """The circuit and the keys on the cluster (scattered once, kept in `shipments`): their
    tokens (default: a BLAKE2b of the bytes) and futures."""
    circuit_token = circuit_token or hashlib.blake2b(server_bytes, digest_size=16).hexdigest()
    keys_token = keys_token or hashlib.blake2b(evaluation_keys, digest_size=16).hexdigest()
    shipments = shipments if shipments is not None else _Shipments()
    server_future = shipments.get(dask_client, f"fheml-circuit-{circuit_token}", server_bytes)
    keys_future = shipments.get(dask_client, f"fheml-keys-{circuit_token}-{keys_token}",
                                evaluation_keys)
    return circuit_token, server_future, keys_token, keys_future


def run_requests(server_bytes: bytes, evaluation_keys: bytes, requests: list[bytes], dask_client,
                 *, circuit_token: str | None = None, keys_token: str | None = None,
                 rows: list[int] | None = None, threads_per_task: int = 1,
                 progress: bool = True, shipments: _Shipments | None = None) -> list[bytes]:
    """Runs each serialized request on the cluster; the replies in the requests' order.

    server_bytes: ``server.fheml``'s content; evaluation_keys: the client's serialized keys;
    both are scattered once per cluster (and kept in ``shipments`` when given). Tokens name
    them on the workers (default: a BLAKE2b of the bytes). rows: rows per request, for the
    progress bar. Errors of a task (a request under other keys, a corrupt request) are raised
    here as the server raised them; the other tasks are cancelled.
    """
    distributed = _distributed()
    requests = [bytes(r) for r in requests]
    if not requests:
        return []
    if (not isinstance(threads_per_task, (int, np.integer)) or isinstance(threads_per_task, bool)
            or threads_per_task < 1):
        raise ValueError(f"threads_per_task must be an int >= 1, found {threads_per_task!r}")
    circuit_token, server_future, keys_token, keys_future = _ship(
        dask_client, server_bytes, evaluation_keys, circuit_token, keys_token, shipments)
    run = uuid.uuid4().hex[:12]
    futures = [dask_client.submit(_run_chunk, circuit_token, server_future, keys_token,
                                  keys_future, request, int(threads_per_task),
                                  key=f"fheml-run-{run}-{i}", pure=False)
               for i, request in enumerate(requests)]
    index = {f.key: i for i, f in enumerate(futures)}
    replies: list[bytes | None] = [None] * len(futures)
    total = sum(rows) if rows is not None else len(requests)
    try:
        with tqdm(total=total, desc="FHE (dask)", unit="row" if rows else "request", delay=1.0,
                  leave=False, disable=not progress) as bar:
            for future in distributed.as_completed(futures):
                i = index[future.key]
                replies[i] = future.result()
                bar.update(rows[i] if rows is not None else 1)
    finally:
        dask_client.cancel([f for f in futures if not f.done()])
    return replies  # type: ignore[return-value]


def _stage_parts(count: int, row_bytes: int, threads: int) -> list[tuple[int, int]]:
    """[begin, end) of each part of a stage of `count` bootstraps: one per worker thread, or a
    multiple of that many when a part would exceed MAX_STAGE_BYTES_PER_TASK (dealt round-robin,
    each thread gets the same number of parts: equal work within one bootstrap); fewer for a
    stage of under MIN_BOOTSTRAPS_PER_TASK per thread."""
    rounds = max(1, math.ceil(count * row_bytes / (threads * MAX_STAGE_BYTES_PER_TASK)))
    parts = min(rounds * threads, max(1, count // MIN_BOOTSTRAPS_PER_TASK), count)
    bounds = [count * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def run_staged(server, server_bytes: bytes, evaluation_keys: bytes, request: bytes, key_id: str,
               dask_client, *, circuit_token: str | None = None, keys_token: str | None = None,
               progress: bool = True, shipments: _Shipments | None = None) -> bytes:
    """One request with its bootstraps split across the cluster; its reply (bytes).

    server: a ``_core.Server`` of ``server_bytes`` here (it runs the linear parts); key_id: the
    evaluation keys' (hex): a request under another key is refused here, and every part carries
    it so that a worker holding other keys refuses it too. The circuit and keys are scattered
    once as in ``run_requests``.
    """
    distributed = _distributed()
    circuit_token, server_future, keys_token, keys_future = _ship(
        dask_client, server_bytes, evaluation_keys, circuit_token, keys_token, shipments)
    threads = worker_threads(dask_client)
    run = uuid.uuid4().hex[:12]
    stage = 0

    with tqdm(total=server.stage_count, desc="FHE (dask, per stage)", unit="stage", delay=1.0,
              leave=False, disable=not progress) as bar:
        def run_stage(ciphertexts: np.ndarray, lookups: np.ndarray) -> np.ndarray:
            nonlocal stage
            parts = _stage_parts(len(ciphertexts), ciphertexts.shape[1] * 8, threads)
            # Parts dealt round-robin over the worker threads (the scheduler's own placement
            # may queue two on one worker while another idles), loosely: a part whose worker
            # dies runs elsewhere, and its data travels inside the task, so nothing is lost.
            slots = _thread_slots(dask_client)
            futures = [dask_client.submit(_run_stage_part, circuit_token, server_future,
                                          keys_token, keys_future, ciphertexts[b:e],
                                          lookups[b:e], key_id, 1,
                                          key=f"fheml-stage-{run}-{stage}-{i}", pure=False,
                                          workers=[slots[i % len(slots)]],
                                          allow_other_workers=True)
                       for i, (b, e) in enumerate(parts)]
            stage += 1
            try:
                done = dask_client.gather(futures)
            finally:
                dask_client.cancel([f for f in futures if not f.done()])
            bar.update(1)
            return np.ascontiguousarray(np.vstack(done), dtype=np.uint64)

        return server.run_staged(bytes(request), key_id, run_stage)


def _thread_slots(dask_client) -> list[str]:
    """Worker addresses, each once per thread, interleaved (a, b, a, b, ...)."""
    nthreads = dask_client.nthreads()
    slots = []
    for round_ in range(max(nthreads.values(), default=0)):
        slots.extend(w for w, n in sorted(nthreads.items()) if n > round_)
    if not slots:
        raise RuntimeError("the Dask cluster has no workers")
    return slots


def worker_threads(dask_client) -> int:
    return max(1, sum(dask_client.nthreads().values()))


def default_rows_per_task(n_rows: int, dask_client, most: int) -> int:
    """Enough tasks for 4 per worker thread (load balance, small loss when a worker dies), at
    most `most` rows each (the model's own batch size)."""
    return max(1, min(int(most), math.ceil(n_rows / (4 * worker_threads(dask_client)))))


SPLITS = ("auto", "rows", "bootstraps")


def choose_split(split: str, n_rows: int, dask_client) -> str:
    """"auto": by rows when there are at least as many rows as worker threads, otherwise by
    bootstraps (one row, or a few, would leave threads idle)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, found {split!r}")
    if split == "auto":
        return "rows" if n_rows >= worker_threads(dask_client) else "bootstraps"
    return split


class ModelShipment:
    """A compiled model's side of distributed runs: its artifacts' bytes, a client with keys of
    its own (in memory, made at the first run), and what was scattered with them."""

    def __init__(self, core_model, out_of_range: str):
        self.core_model = core_model
        self.server_bytes, client_bytes = core_model.artifacts("{}")
        self.client = _core.Client.from_bytes(client_bytes, out_of_range=out_of_range)
        self.shipments = _Shipments()
        self._server = None  # runs the linear parts of split runs here, made at the first

    def decision(self, X: np.ndarray, dask_client, rows_per_task: int, progress: bool = True,
                 split: str = "auto"):
        """Decrypted, dequantized decision values [N, C] of the rows X (float64, C order)."""
        if not self.client.has_keys:
            self.client.generate_keys(False)
        if choose_split(split, len(X), dask_client) == "bootstraps":
            if self._server is None:
                self._server = _core.Server.from_bytes(self.server_bytes)
            request = self.client.quantize_encrypt_serialize(np.ascontiguousarray(X))
            reply = run_staged(self._server, self.server_bytes, self.client.evaluation_keys(),
                               request, self.client.key_id, dask_client,
                               circuit_token=self.client.circuit_id,
                               keys_token=self.client.key_id, progress=progress,
                               shipments=self.shipments)
            return self.client.deserialize_decrypt_dequantize(reply)
        chunks = [X[i:i + rows_per_task] for i in range(0, len(X), rows_per_task)]
        requests = [self.client.quantize_encrypt_serialize(np.ascontiguousarray(c))
                    for c in chunks]
        replies = run_requests(self.server_bytes, self.client.evaluation_keys(), requests,
                               dask_client, circuit_token=self.client.circuit_id,
                               keys_token=self.client.key_id, rows=[len(c) for c in chunks],
                               progress=progress, shipments=self.shipments)
        return np.vstack([self.client.deserialize_decrypt_dequantize(r) for r in replies])


def model_decision(owner, core_model, X: np.ndarray, dask_client, out_of_range: str,
                   most_rows: int) -> np.ndarray:
    """A compiled model's decision values for rows X, run encrypted on the cluster (split by
    rows, or by bootstraps for fewer rows than worker threads). The shipment (artifacts,
    in-memory keys, scattered futures) is kept on `owner` for later calls while its compiled
    C++ model stays the same."""
    _distributed()
    shipment = owner.__dict__.get("_shipment")
    if shipment is None or shipment.core_model is not core_model:
        shipment = ModelShipment(core_model, out_of_range)
        owner._shipment = shipment
    return shipment.decision(X, dask_client,
                             default_rows_per_task(len(X), dask_client, most_rows))


def check_mode(fhe: str, client) -> None:
    if client is not None and fhe != "execute":
        raise ValueError("client= runs encrypted rows on a Dask cluster: use it with "
                         f"fhe='execute' (found fhe={fhe!r}; disable and simulate run here)")
