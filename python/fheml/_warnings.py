"""Warning categories of fheml (raised from C++ through fheml::warn; re-exported by fheml)."""


class FhemlWarning(UserWarning):
    """Base of fheml's warnings."""


class InputRangeWarning(FhemlWarning):
    """Input values beyond the range a model was calibrated on were clipped to its ends: the
    encrypted result computes with the clipped values. ``out_of_range="raise"`` (compile,
    FHEModelClient) refuses such rows instead, ``"clip"`` silences this."""


class KeyPermissionWarning(FhemlWarning):
    """A key directory or secret key that others can read or enter."""
