"""fastgrad's own exceptions. Bad arguments raise the built-in ValueError or TypeError (naming
the argument and what was expected) before any kernel runs; what can only be found while
training is reported here."""


class NonFiniteStep(FloatingPointError):
    """A step whose loss or update was not finite. The optimizer's step changed nothing; a
    sequential sweep undid the failing step and kept the ones before it.

    Where it happened, as attributes (None where they do not apply or are not known): ``epoch``
    (from 1, set by ``fastgrad.train``), ``sweep`` (the sweep within the epoch, from 1),
    ``step`` (the failing step within its epoch or sweep, from 1), ``coordinate`` (the
    sequential step's parameter index) and ``history`` (the History of the epochs before it,
    set by ``fastgrad.train``). The message names the epoch, sweep and step."""

    def __init__(self, reason, *, epoch=None, sweep=None, step=None, coordinate=None,
                 history=None):
        super().__init__(reason)
        self.reason, self.epoch, self.sweep, self.step = reason, epoch, sweep, step
        self.coordinate, self.history = coordinate, history

    def where(self, **context):
        """The same failure with more of its context (epoch, sweep, step, coordinate,
        history) filled in."""
        fields = {"epoch": self.epoch, "sweep": self.sweep, "step": self.step,
                  "coordinate": self.coordinate, "history": self.history}
        fields.update(context)
        return NonFiniteStep(self.reason, **fields)

    def __str__(self):
        place = [f"{name} {value}" for name, value in
                 (("epoch", self.epoch), ("sweep", self.sweep), ("step", self.step))
                 if value is not None]
        return f"{', '.join(place)}: {self.reason}" if place else self.reason


class NoDescentStep(ArithmeticError):
    """``diagnostics.largest_descent_step`` tried every step it was allowed to and none lowered
    the loss enough (Armijo's test); ``smallest`` is the smallest step tried."""

    def __init__(self, message, smallest):
        super().__init__(message)
        self.smallest = smallest
