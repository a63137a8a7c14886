"""tests/fuzz: property-based kernel tests (hypothesis) and the harness test of the atheris
targets. The long runs are marked ``fuzz`` (``pytest -m fuzz tests/fuzz``); the default
``addopts`` leaves them out."""
