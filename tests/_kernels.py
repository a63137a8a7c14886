"""Shared by the kernel tests: a compiled kernel must fail exactly as its numpy twin does."""
import pytest


def same_error(native, twin, *args, **kwargs):
    """``native`` and ``twin`` raise the same exception type with the same message."""
    with pytest.raises(Exception) as e_native:
        native(*args, **kwargs)
    with pytest.raises(Exception) as e_twin:
        twin(*args, **kwargs)
    assert type(e_native.value) is type(e_twin.value)
    assert str(e_native.value) == str(e_twin.value)
