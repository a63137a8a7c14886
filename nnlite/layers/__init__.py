"""Layers: each a small class with forward/backward and params/grads side by side."""
from .activations import GELU, Activation, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from .attention import MultiHeadAttention
from .base import Layer
from .conv import Conv2D, ConvTranspose2D
from .dropout import Dropout
from .embedding import Embedding, PositionalEmbedding
from .flatten import Flatten
from .linear import FC, Dense, Linear
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .reshape import Reshape, Upsample
from .residual import Residual
from .softmax import Softmax

__all__ = ["FC", "GELU", "Activation", "Dense", "Dropout", "Embedding", "Flatten", "Identity",
           "Layer", "LayerNorm", "LeakyReLU", "Linear", "MultiHeadAttention", "PositionalEmbedding",
           "ReLU", "Residual", "Sigmoid", "Softmax", "Tanh",
           # convolutional networks
           "AvgPool2D", "BatchNorm1d", "BatchNorm2d", "Conv2D", "ConvTranspose2D",
           "GlobalAvgPool2D", "MaxPool2D", "Reshape", "Upsample"]
