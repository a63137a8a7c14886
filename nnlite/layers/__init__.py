"""Layers: each a small class with forward/backward and params/grads side by side."""
from .base import Layer
from .flatten import Flatten
from .linear import Linear, FC, Dense
from .activations import ReLU, LeakyReLU, Tanh, Sigmoid, GELU, Identity, Activation
from .softmax import Softmax
from .dropout import Dropout
from .embedding import Embedding, PositionalEmbedding
from .normalization import LayerNorm
from .attention import MultiHeadAttention
from .residual import Residual

__all__ = ["Layer", "Flatten", "Linear", "FC", "Dense", "ReLU", "LeakyReLU", "Tanh", "Sigmoid",
           "GELU", "Identity", "Activation", "Softmax", "Dropout", "Embedding", "PositionalEmbedding",
           "LayerNorm", "MultiHeadAttention", "Residual"]
