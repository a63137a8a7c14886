"""Layers: each a small class with forward/backward and params/grads side by side."""
from .base import Layer
