"""What the model benchmark scripts share: the breast-cancer split they time on and the JSON
file they write (the machine and the date with the results)."""
from __future__ import annotations

import datetime
import json
import os
import platform

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def breast_cancer_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Breast cancer, stratified 70/30 (random_state 0), standardized on the training rows:
    X_train, X_test, y_train, y_test."""
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                        stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def write_results(path: str, results: list, **meta) -> None:
    """results with the machine, its CPU count, today's date and `meta`, as JSON at path."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump({"machine": platform.platform(), "cpus": os.cpu_count(),
                   "date": str(datetime.date.today()), **meta, "results": results}, f, indent=1)
    print(f"wrote {path}")
