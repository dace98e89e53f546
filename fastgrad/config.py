"""One protocol for the objects that describe a training run — the optimizers and the approaches
(the network, fastgrad.MLP, has the same four methods for its architecture and arrays):

- ``config()``: JSON-ready settings, ``{"type": class name, option: value, ...}``, a nested
  object (an approach's optimizer) as its own config;
- ``from_config(config)``: the object rebuilt from them (``Configurable.from_config`` picks the
  class from ``"type"``);
- ``state_dict()`` / ``load_state_dict(state)``: the arrays, apart (an optimizer's moments and
  step counts), in the spirit of torch;
- ``get_params(deep=True)`` / ``set_params(**params)``: scikit-learn's estimator parameters,
  nested ones joined by ``__`` (``optimizer__lr``), so that ``sklearn.base.clone`` and grid
  searches reach them. An option keeps the value it was given, at most made a plain int or
  float, so that clone finds what it passed; ``set_params`` changes all or nothing.

A configurable class lists its options in ``_option_names`` and validates a change of some of
them, all or nothing, in ``_set_options``. Classes register under their name for
``from_config``; a base class says ``abstract=True`` and stays out.
"""
import numbers

import numpy as np

REGISTRY = {}


def jsonable(value):
    """``value`` as JSON-ready data: tuples and arrays as lists, numpy scalars as Python's,
    configurable objects as their config."""
    if isinstance(value, Configurable):
        return value.config()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, bool, numbers.Number)):
        return value
    raise TypeError(f"{value!r} cannot be described as JSON-ready data")


class Configurable:
    """The protocol above; subclasses register themselves by class name for ``from_config``."""

    def __init_subclass__(cls, abstract=False, **kwargs):
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        known = REGISTRY.get(cls.__name__)
        if known is not None and (known.__module__, known.__qualname__) != \
                (cls.__module__, cls.__qualname__):
            raise TypeError(f"a configurable class named {cls.__name__!r} exists already "
                            f"({known.__module__}); a config names its type by the class's "
                            f"name, so give this one another")
        REGISTRY[cls.__name__] = cls

    def _option_names(self):
        """The names of the options, the arguments of ``__init__``."""
        raise NotImplementedError

    def _set_options(self, values):
        """Change the options in ``values`` together, validated; on an invalid value nothing
        changes."""
        raise NotImplementedError

    # ------------------------------------------------------------------ scikit-learn's protocol
    def get_params(self, deep=True):
        """{option: value}; with ``deep``, a configurable option's own options too, as
        ``option__name``."""
        params = {name: getattr(self, name) for name in self._option_names()}
        if deep:
            for name, value in list(params.items()):
                if isinstance(value, Configurable):
                    params.update({f"{name}__{key}": item
                                   for key, item in value.get_params(deep=True).items()})
        return params

    def set_params(self, **params):
        """Change options (``optimizer__lr=0.5`` reaches the optimizer's), all or nothing: on
        an invalid value every object keeps the options it had. Returns self."""
        names = self._option_names()
        own, nested = {}, {}
        for key, value in params.items():
            name, _, rest = key.partition("__")
            if name not in names:
                raise ValueError(f"{type(self).__name__} has no option {name!r}; its options are "
                                 f"{list(names)}")
            if rest:
                nested.setdefault(name, {})[rest] = value
            else:
                own[name] = value
        before = {name: getattr(self, name) for name in own}
        changed = []  # (object, its options before), to put back on failure
        try:
            if own:
                self._set_options(own)
            for name, changes in nested.items():
                inner = getattr(self, name)
                if not isinstance(inner, Configurable):
                    raise ValueError(f"{type(self).__name__}'s option {name!r} has no options "
                                     f"of its own; got {sorted(changes)}")
                changed.append((inner, inner.get_params(deep=False)))
                inner.set_params(**changes)
        except (TypeError, ValueError):
            for inner, options in reversed(changed):
                inner._set_options(options)
            if before:
                self._set_options(before)
            raise
        return self

    # ------------------------------------------------------------------ config and state
    def config(self):
        """The settings as JSON-ready data, with the class's name under ``"type"``."""
        return {"type": type(self).__name__,
                **{name: jsonable(getattr(self, name)) for name in self._option_names()}}

    @classmethod
    def from_config(cls, config):
        """The object a config describes (nested configs, those with a ``"type"``, rebuilt
        too); the type must be this class or one of its subclasses."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict; got {type(config).__name__}")
        options = dict(config)
        kind = options.pop("type", cls.__name__)
        target = REGISTRY.get(kind)
        if target is None or not issubclass(target, cls):
            known = sorted(name for name, each in REGISTRY.items()
                           if issubclass(each, cls) and each is not cls)
            raise ValueError(f"config's type must be one of {known}; got {kind!r}")
        options = {name: Configurable.from_config(value)
                   if isinstance(value, dict) and "type" in value else value
                   for name, value in options.items()}
        return target(**options)

    def state_dict(self):
        """The arrays this object holds, {name: array} (copies); empty when it holds none."""
        return {}

    def load_state_dict(self, state):
        """Put back arrays from ``state_dict``."""
        if state:
            raise ValueError(f"{type(self).__name__} holds no arrays; got {sorted(state)}")
