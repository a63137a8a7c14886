"""Learning-rate schedules: callables ``schedule(step) -> lr``, with ``step`` counting from 0.

Pass one as an optimizer's ``lr``; the optimizer calls it with its step count before each
update.
"""
import math

from .._configurable import Configurable


class Schedule(Configurable):
    """Base class: ``__call__(step)`` and ``get_config()`` (constructor args)."""

    registry = {}

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return dict(self._config)


class StepDecay(Schedule):
    r"""Multiply by ``gamma`` every ``step_size`` steps: :math:`\eta_t = \eta\,\gamma^{\lfloor t / s\rfloor}`."""

    def __init__(self, lr, step_size, gamma=0.1):
        if step_size < 1:
            raise ValueError(f"StepDecay: step_size must be >= 1, got {step_size}")
        self.lr, self.step_size, self.gamma = float(lr), int(step_size), float(gamma)
        self._config = {"lr": self.lr, "step_size": self.step_size, "gamma": self.gamma}

    def __call__(self, step):
        return self.lr * self.gamma ** (int(step) // self.step_size)


class ExponentialDecay(Schedule):
    r"""Multiply by ``gamma`` every step: :math:`\eta_t = \eta\,\gamma^t`."""

    def __init__(self, lr, gamma):
        self.lr, self.gamma = float(lr), float(gamma)
        self._config = {"lr": self.lr, "gamma": self.gamma}

    def __call__(self, step):
        return self.lr * self.gamma ** int(step)


class CosineDecay(Schedule):
    r"""Linear warm-up, then cosine decay to ``min_lr`` (nanoGPT's ``get_lr``).

    .. math::

        \eta_t = \begin{cases}
            \eta\,\frac{t + 1}{w + 1} & t < w \\
            \eta_\min + \tfrac12\big(1 + \cos(\pi\,\frac{t - w}{T - w})\big)(\eta - \eta_\min)
                & w \le t \le T \\
            \eta_\min & t > T
        \end{cases}

    with :math:`w` = ``warmup_steps`` and :math:`T` = ``total_steps``. Warm-up starts above 0
    so the first step already moves the weights.
    """

    def __init__(self, lr, total_steps, warmup_steps=0, min_lr=0.0):
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"CosineDecay: need 0 <= warmup_steps < total_steps, got "
                             f"warmup_steps={warmup_steps}, total_steps={total_steps}")
        self.lr, self.min_lr = float(lr), float(min_lr)
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)
        self._config = {"lr": self.lr, "total_steps": self.total_steps,
                        "warmup_steps": self.warmup_steps, "min_lr": self.min_lr}

    def __call__(self, step):
        t, w, T = int(step), self.warmup_steps, self.total_steps
        if t < w:
            return self.lr * (t + 1) / (w + 1)
        if t > T:
            return self.min_lr
        ratio = (t - w) / (T - w)
        coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))   # 1 → 0
        return self.min_lr + coeff * (self.lr - self.min_lr)


def serialize(schedule):
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(d):
    return Schedule.registry[d["class_name"]].from_config(d["config"])
