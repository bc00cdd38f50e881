"""cnnlab: build, train, fine-tune and see inside convolutional image classifiers."""

__version__ = "0.1.0"
