"""cnnlab: build, train, fine-tune and see inside convolutional image classifiers."""

__version__ = "0.1.0"

# Imported on first use, so that `import cnnlab` (and the command line's start) does not pay for torch.
_LAZY = {"interpret": "cnnlab.interpretation", "Interpretation": "cnnlab.interpretation"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
