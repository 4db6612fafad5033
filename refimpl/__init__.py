"""refimpl: reference implementation of optimal-transport methods for training GANs.

NumPy-first, hand-written backpropagation, one Array API code path for every backend.
"""
__version__ = "0.1.0"
