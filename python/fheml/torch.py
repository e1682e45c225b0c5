"""PyTorch networks on encrypted data (needs the optional extra: ``pip install fheml[torch]``).

    from fheml.torch import compile_torch_model
    fhe_model = compile_torch_model(net, X_train)
    y = fhe_model.forward(X_test, fhe="execute")

The module is exported to ONNX in memory (torch.onnx.export, TorchScript exporter, opset 17, a
batch of one with a dynamic batch axis) and handed to fheml's C++ importer: see fheml.onnx.
"""
from __future__ import annotations

import io
import warnings

import numpy as np

from fheml.onnx import FheNetwork

__all__ = ["compile_torch_model", "export_onnx"]

OPSET = 17


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("fheml.torch needs PyTorch: pip install 'fheml[torch]' "
                          "(torch==2.13.0, CPU build)") from e
    return torch


def export_onnx(module, sample_shape) -> bytes:
    """The module as a serialized ONNX model (opset 17), for inputs [N, *sample_shape]."""
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"module must be a torch.nn.Module, found {type(module).__name__}")
    was_training = module.training
    module.eval()
    dummy = torch.zeros((1, *sample_shape), dtype=torch.float32)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(module, (dummy,), buffer, dynamo=False, opset_version=OPSET,
                              input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                              do_constant_folding=True)
    except Exception as e:
        raise ValueError(f"torch.onnx.export failed for {type(module).__name__}: {e}") from e
    finally:
        module.train(was_training)
    return buffer.getvalue()


def compile_torch_model(module, X_calib, n_bits="auto", rounding_threshold_bits="auto",
                        rounding_method: str = "approximate", p_error: float | None = None,
                        global_p_error: float | None = None, threads: int = 0,
                        max_lookup_bits: int = 8, min_agreement: float = 0.99,
                        out_of_range: str = "warn", security_level: int = 128,
                        profile: str = "standard", max_partitions: int = 3,
                        output_noise_bits: int = 0) -> FheNetwork:
    """Compiles a torch.nn.Module for encrypted inference; see fheml.onnx.compile_onnx_model
    for the options. X_calib: representative inputs [N, ...] (numpy array or tensor)."""
    torch = _torch()
    if isinstance(X_calib, torch.Tensor):
        X_calib = X_calib.detach().cpu().numpy()
    X_calib = np.asarray(X_calib)
    if X_calib.ndim < 2:
        raise ValueError(f"X_calib must be [N, ...] (N samples), found shape {X_calib.shape}")
    onnx_bytes = export_onnx(module, X_calib.shape[1:])
    return FheNetwork(onnx_bytes, X_calib, n_bits=n_bits,
                      rounding_threshold_bits=rounding_threshold_bits,
                      rounding_method=rounding_method, max_lookup_bits=max_lookup_bits,
                      p_error=p_error, global_p_error=global_p_error, threads=threads,
                      min_agreement=min_agreement, out_of_range=out_of_range,
                      security_level=security_level, profile=profile,
                      max_partitions=max_partitions, output_noise_bits=output_noise_bits)
