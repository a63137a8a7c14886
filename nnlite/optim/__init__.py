"""Optimizers, learning-rate schedules and gradient clipping."""
from .optimizers import Optimizer, SGD, Adam, AdamW, RMSprop, NonFiniteGradient, get
from .schedules import Schedule, StepDecay, ExponentialDecay, CosineDecay
from .clip import clip_grad_norm, global_norm

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "NonFiniteGradient", "get",
           "Schedule", "StepDecay", "ExponentialDecay", "CosineDecay", "clip_grad_norm",
           "global_norm"]
