"""fheml: machine learning on encrypted data (TFHE).

``fheml.sklearn`` holds scikit-learn-compatible models whose predictions run on encrypted
inputs; ``python -m fheml.demo`` shows one end to end. The computing is the C++ library's
(``fheml._core``).
"""
from fheml._core import __version__
from fheml._warnings import FhemlWarning, InputRangeWarning, KeyPermissionWarning

__all__ = ["FhemlWarning", "InputRangeWarning", "KeyPermissionWarning", "__version__"]
