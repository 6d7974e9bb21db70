"""kiln's surrogate models: feature encoding, Gaussian processes, censored targets, save/load.

Arrays and DataFrames in, predictions out: nothing here knows about campaigns, files or MLflow.
Heavy dependencies (torch, botorch) are imported by the submodules, not here.
"""

__all__ = ["CategoricalFeature", "ContinuousFeature", "Encoder", "SurrogateFitError"]

from surrogate.encoding import CategoricalFeature, ContinuousFeature, Encoder
from surrogate.errors import SurrogateFitError
