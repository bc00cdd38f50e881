"""cnnlab.scratch: a convolutional network engine in plain NumPy, small enough to read in one sitting.

Every layer is a class with `forward(x, training)` and `backward(dout)` side by
side. `forward` keeps what the gradient will need (the input windows of a
convolution, the winner of each max-pool window, a tanh's outputs); `backward`
receives d loss / d output, adds d loss / d parameter into each
`Parameter.grad` (with `+=`, so gradients accumulate until `zero_grad`), and
returns d loss / d input for the layer below. `Sequential` chains them: forward
in order, backward in reverse. That is all backpropagation is.

Convolution is done without pixel loops: `sliding_window_view` exposes every
k x k window as a view, one copy lays the windows out as columns ("im2col"),
and one matrix product applies all kernels to all windows. Pooling loops only
over the k * k offsets inside a window. Arrays have the shape (N, C, H, W) but
the convolutions store them batch-last in memory (see `Conv2D`), which the
element-wise layers preserve; NumPy's strides hide this from everything else.

The engine speaks the torch side's language: `build("seed-cnn", 10, (1, 28, 28))`
reads the same spec strings, names its parameters like the torch model
(``conv1.weight`` of shape (out, in, k, k), ``dense1.weight`` (out, in)), and
initialises them the same way, so `state_dict` / `load_state_dict` move weights
between the engines. Arrays are NCHW; float32 to train, float64 for gradient checks.

    net = build("seed-cnn", 10, (1, 28, 28), seed=0)
    trainer = ScratchTrainer(net, SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, decay=1e-6))
    history = trainer.fit(x, y, validation_data=(xv, yv), epochs=10, batch_size=100)

The package imports NumPy and nothing from torch.
"""

from cnnlab.scratch.activations import ReLU, Sigmoid, Softmax, Tanh, softmax
from cnnlab.scratch.base import Layer, Parameter
from cnnlab.scratch.conv import Conv2D, conv3d
from cnnlab.scratch.layers import Dense, Dropout, Flatten
from cnnlab.scratch.losses import softmax_cross_entropy
from cnnlab.scratch.network import Sequential, build
from cnnlab.scratch.optim import SGD
from cnnlab.scratch.pool import AvgPool2D, MaxPool2D
from cnnlab.scratch.trainer import ScratchTrainer

__all__ = ["AvgPool2D", "Conv2D", "Dense", "Dropout", "Flatten", "Layer", "MaxPool2D", "Parameter", "ReLU", "SGD",
           "ScratchTrainer", "Sequential", "Sigmoid", "Softmax", "Tanh", "build", "conv3d", "softmax",
           "softmax_cross_entropy"]
