"""All targets' surrogates as one BoTorch model, whatever their kind.

The acquisition function needs one multi-output model. :class:`JointModel` asks each target's
surrogate for its posterior MVN over the query points and stacks them as independent outputs, as
``ModelListGP`` does for GPs, so GPs and gradient-boosting ensembles can be mixed per target.
"""

from __future__ import annotations

from typing import Sequence

import torch
from botorch.models.model import Model
from botorch.posteriors import Posterior
from botorch.posteriors.gpytorch import GPyTorchPosterior
from botorch.sampling import SobolQMCNormalSampler
from botorch.sampling.get_sampler import GetSampler
from gpytorch.distributions import MultitaskMultivariateNormal
from linear_operator.operators import DiagLinearOperator
from torch import Tensor

from surrogate.base import Surrogate


class JointModel(Model):
    """A BoTorch ``Model`` with one output per surrogate (in the given order).

    ``posterior(X)`` for ``X`` of shape ``batch x q x d`` returns a posterior over
    ``batch x q x m`` noise-free target values; outputs are independent given ``X``.
    """

    def __init__(self, surrogates: Sequence[Surrogate]) -> None:
        super().__init__()
        if not surrogates:
            raise ValueError("JointModel needs at least one fitted surrogate")
        self._surrogates = list(surrogates)  # a plain list: their torch modules are not ours to train

    @property
    def num_outputs(self) -> int:
        return len(self._surrogates)

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size([])

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform=None,
        **kwargs,
    ) -> Posterior:
        if observation_noise is not False:
            raise NotImplementedError(
                "JointModel gives noise-free posteriors; use each surrogate's predict() for noisy ones"
            )
        idx = range(self.num_outputs) if output_indices is None else output_indices
        if X.shape[-2] == 1 and len(idx) > 1:
            # one recipe per batch (q = 1, every candidate the local search scores): the outputs are independent
            # Gaussians, so their means and variances are the whole posterior; no joint covariance to build
            pairs = [self._surrogates[i].marginal(X) for i in idx]  # each batch x 1
            mean = torch.stack([m for m, _ in pairs], dim=-1)  # batch x 1 x m
            var = torch.stack([v for _, v in pairs], dim=-1)  # batch x 1 x m
            post = IndependentNormalPosterior(mean, var.clamp_min(1e-12))
            if posterior_transform is None:
                return post
            mvn = MultitaskMultivariateNormal(mean, DiagLinearOperator(post.variance.squeeze(-2)))
        else:
            mvns = [self._surrogates[i].mvn(X) for i in idx]
            mvn = mvns[0] if len(mvns) == 1 else MultitaskMultivariateNormal.from_independent_mvns(mvns=mvns)
        post = GPyTorchPosterior(distribution=mvn)
        return post if posterior_transform is None else posterior_transform(post)

    def marginals(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """Noise-free posterior means and variances of every output at each of ``X`` (``n x d``): two ``n x m``.

        One call per surrogate and only the diagonal (the front's posterior means at the measured recipes, the
        exploring half's scale and upper confidence bounds), where ``posterior`` builds the joint covariance; a
        gradient-boosting ensemble gives them without building an MVN at all.
        """
        pairs = [s.marginal(X) for s in self._surrogates]
        return torch.stack([m for m, _ in pairs], dim=-1), torch.stack([v for _, v in pairs], dim=-1)


class IndependentNormalPosterior(Posterior):
    """Independent Gaussians, ``batch x q x m`` means and variances: what a ``MultitaskMultivariateNormal`` with a
    diagonal covariance gives, sample for sample (``mean + sqrt(variance) * base sample``, base samples of the
    same shape), without building one. GPyTorch's constructor calls ``torch.broadcast_shapes``, whose first call
    imports torch's symbolic shapes (SymPy: 0.2-0.4 s of a fresh ``kiln suggest``) and every call costs a
    millisecond of Python: the local search asks for hundreds of these."""

    def __init__(self, mean: Tensor, variance: Tensor) -> None:
        self._mean, self._variance = mean, variance

    @property
    def mean(self) -> Tensor:
        return self._mean

    @property
    def variance(self) -> Tensor:
        return self._variance

    @property
    def device(self) -> torch.device:
        return self._mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self._mean.dtype

    @property
    def base_sample_shape(self) -> torch.Size:
        return self._mean.shape

    @property
    def batch_shape(self) -> torch.Size:
        """The t-batch shape, before ``q x m`` (BoTorch's samplers extend base samples by it)."""
        return self._mean.shape[:-2]

    @property
    def batch_range(self) -> tuple[int, int]:
        return (0, -2)  # the t-batch dimensions, before q x m (as a multi-output GPyTorch posterior's)

    def _extended_shape(self, sample_shape: torch.Size = torch.Size()) -> torch.Size:  # noqa: B008
        return sample_shape + self._mean.shape

    def rsample_from_base_samples(self, sample_shape: torch.Size, base_samples: Tensor) -> Tensor:
        """``sample_shape x batch x q x m`` samples from base samples of that shape."""
        if base_samples.shape[: len(sample_shape)] != sample_shape:
            raise RuntimeError(f"sample_shape {tuple(sample_shape)} disagrees with base samples {base_samples.shape}")
        return self._mean + self._variance.sqrt() * base_samples

    def rsample(self, sample_shape: torch.Size | None = None) -> Tensor:
        shape = torch.Size([1]) if sample_shape is None else sample_shape
        base = torch.randn(shape + self._mean.shape, dtype=self.dtype, device=self.device)
        return self.rsample_from_base_samples(shape, base)


@GetSampler.register(IndependentNormalPosterior)
def _sampler(posterior: IndependentNormalPosterior, sample_shape: torch.Size, *, seed: int | None = None):
    """Sobol normal base samples, as for the MVN this posterior stands in for (qLogNEHVI prunes a one-recipe
    baseline with one)."""
    return SobolQMCNormalSampler(sample_shape=sample_shape, seed=seed)
