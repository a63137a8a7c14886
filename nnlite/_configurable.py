"""The base of the parts a saved model names and rebuilds: layers, losses, optimizers and
learning-rate schedules.

Each family's base class (``Layer``, ``Loss``, ``Optimizer``, ``Schedule``) derives from
:class:`Configurable` and holds its own ``registry``; every subclass registers there by class
name when it is defined, so a file that says ``{"class_name": "Linear", "config": {...}}`` can
be read back with ``Layer.registry["Linear"].from_config({...})``. Low level on purpose: it
imports nothing from nnlite.
"""


class Configurable:
    """Registered by class name in its family's ``registry``; rebuilt from ``get_config()``
    (the constructor arguments) by ``from_config``, which its repr shows."""

    registry = None     # each family's base class sets its own dict

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "registry" not in cls.__dict__:      # a family's base class is not registered
            cls.registry[cls.__name__] = cls

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
