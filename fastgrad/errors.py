"""fastgrad's own exceptions. Bad arguments raise the built-in ValueError or TypeError (naming
the argument and what was expected) before any kernel runs; what can only be found while
training is reported here."""


class NonFiniteStep(FloatingPointError):
    """A step whose loss or update was not finite. The optimizer's step changed nothing; a
    sequential sweep undid the failing step and kept the ones before it. Raised by
    ``fastgrad.train`` with the epoch and step in its message and the ``history`` so far as an
    attribute."""
