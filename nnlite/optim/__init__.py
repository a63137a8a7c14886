"""Optimizers, learning-rate schedules and gradient clipping."""
from .optimizers import Optimizer, SGD, Adam, AdamW, RMSprop, get
from .schedules import Schedule, StepDecay, ExponentialDecay, CosineDecay
from .clip import clip_grad_norm

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "get", "Schedule", "StepDecay",
           "ExponentialDecay", "CosineDecay", "clip_grad_norm"]
