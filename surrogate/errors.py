"""Errors raised by the surrogate layer."""


class SurrogateFitError(RuntimeError):
    """A model could not be fitted (e.g. non-PSD covariance, NaN loss) even after retries."""


class NotFittedError(RuntimeError):
    """``predict`` or ``save`` was called before ``fit``."""
