"""Gaussian noise and Poisson sampling from a cryptographic random source.

``torch`` and ``numpy`` generators are not cryptographic: whoever learns or
guesses their state can subtract the noise. Opacus's own ``secure_mode``
needs ``torchcsprng``, which no longer builds against current PyTorch. This
module replaces it with :class:`CryptoRandom`, which draws uniform bits from
the library's AES-256-CTR keystream (:func:`secagg.prg.expand`) keyed by
``os.urandom(32)``, turns them into standard normals with the Box–Muller
transform in float64, and, as Opacus's secure mode does (after Holohan &
Braghin 2021), makes each noise value the sum of four independent Gaussian
draws, scaled back to the requested standard deviation.

Security assumption and limit: the noise is unpredictable to anyone without
the seed, but it is float64. Summing four draws does not prevent
floating-point attacks (Mironov 2012): the set of values the noise can take
has gaps, so a released ``x + noise`` can prove ``x != 0`` on part of the
outputs (the test suite demonstrates it). The (epsilon, delta) accounting
holds for the real-valued Gaussian mechanism, not for these float64 values;
the discrete mechanisms in ``dp.discrete`` avoid floating-point noise.

Every call uses a fresh keystream label (a 64-bit counter), so no keystream
is ever reused within one seed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from secagg.errors import ParameterError

if TYPE_CHECKING:
    import torch

__all__ = ["SECURE_NOISE_DRAWS", "CryptoRandom", "KeystreamSource"]

#: Gaussian draws summed per noise value (Opacus's secure mode uses 2n = 4).
SECURE_NOISE_DRAWS: Final = 4

_LABEL: Final = b"secagg/dp/noise/"
_TWO_PI: Final = 2.0 * np.pi
_INV_2_53: Final = 1.0 / float(1 << 53)


FloatArray = npt.NDArray[np.float64]


def _box_muller(u1: FloatArray, u2: FloatArray) -> FloatArray:
    """Two standard normals per pair of uniforms, ``u1`` in (0, 1], ``u2`` in [0, 1)."""
    torch = sys.modules.get("torch")
    if torch is not None:  # already loaded: its vectorised log/sin/cos are faster
        a, b = torch.from_numpy(u1), torch.from_numpy(u2)
        r = torch.sqrt(-2.0 * torch.log(a))
        theta = _TWO_PI * b
        return torch.cat((r * torch.cos(theta), r * torch.sin(theta))).numpy()  # type: ignore[no-any-return]
    r_np = np.sqrt(-2.0 * np.log(u1))
    theta_np = _TWO_PI * u2
    return np.concatenate((r_np * np.cos(theta_np), r_np * np.sin(theta_np)))


class KeystreamSource:
    """64-bit words from the AES-CTR keystream under this class's ``LABEL``
    (each subclass its own label, so two sources on one seed never share
    words).

    Args:
        seed: 32 secret bytes; by default ``os.urandom(32)``. Pass a seed only
            in tests and known-answer checks: whoever knows it can reproduce
            (and remove) the noise.
    """

    LABEL: bytes = b""

    def __init__(self, seed: bytes | None = None) -> None:
        from secagg.prg import WordStream

        if not self.LABEL:
            raise ParameterError(f"{type(self).__name__} has no keystream label")
        self._stream = WordStream(seed, self.LABEL)

    @property
    def words_drawn(self) -> int:
        """Number of 64-bit words drawn so far (lets tests check it is used)."""
        return self._stream.words_drawn

    def __repr__(self) -> str:  # never show the seed
        return f"{type(self).__name__}(words_drawn={self.words_drawn})"

    def _words(self, n: int) -> npt.NDArray[np.uint64]:
        return self._stream.words(n)


class CryptoRandom(KeystreamSource):
    """A cryptographic source of uniforms and Gaussians (see
    :class:`KeystreamSource` for ``seed``)."""

    LABEL = _LABEL

    def uniform(self, n: int) -> npt.NDArray[np.float64]:
        """``n`` independent uniforms on [0, 1), each with 53 random bits."""
        if n < 0:
            raise ParameterError(f"n={n} must be >= 0")
        return (self._words(n) >> np.uint64(11)).astype(np.float64) * _INV_2_53

    def standard_normal(self, n: int) -> npt.NDArray[np.float64]:
        """``n`` independent N(0, 1) values (Box–Muller on 53-bit uniforms)."""
        if n < 0:
            raise ParameterError(f"n={n} must be >= 0")
        m = (n + 1) // 2
        bits = self._words(2 * m) >> np.uint64(11)
        u1 = (bits[:m].astype(np.float64) + 1.0) * _INV_2_53  # (0, 1]: log is finite
        u2 = bits[m:].astype(np.float64) * _INV_2_53  # [0, 1)
        return _box_muller(u1, u2)[:n]

    def gaussian(
        self, std: float, size: int, *, draws: int = SECURE_NOISE_DRAWS
    ) -> npt.NDArray[np.float64]:
        """``size`` values of N(0, std^2), each the sum of ``draws`` independent
        Gaussians of variance ``std^2 / draws`` (as Opacus's secure mode; this
        does not prevent floating-point attacks, see the module docstring)."""
        if not (np.isfinite(std) and std >= 0):
            raise ParameterError(f"std={std!r} must be a finite number >= 0")
        if draws < 1:
            raise ParameterError(f"draws={draws} must be >= 1")
        if size < 0:
            raise ParameterError(f"size={size} must be >= 0")
        if std == 0:
            return np.zeros(size, dtype=np.float64)
        z = self.standard_normal(draws * size).reshape(draws, size)
        out: npt.NDArray[np.float64] = z.sum(axis=0)
        out *= std / np.sqrt(draws)
        return out

    def gaussian_like(self, std: float, reference: torch.Tensor) -> torch.Tensor:
        """Noise of ``reference``'s shape, dtype and device, N(0, std^2) each."""
        import torch

        values = self.gaussian(std, int(reference.numel())).reshape(tuple(reference.shape))
        return torch.from_numpy(values).to(dtype=reference.dtype, device=reference.device)

    def bernoulli_mask(self, n: int, p: float) -> npt.NDArray[np.bool_]:
        """``n`` independent Bernoulli(``p``) draws (Poisson sampling masks)."""
        if not (0.0 <= p <= 1.0):
            raise ParameterError(f"p={p!r} is outside [0, 1]")
        return self.uniform(n) < p
