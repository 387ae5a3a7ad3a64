"""Per-layer-type compression ratios measured by running the real compressor on gradients."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ._compress_adacomp import AdaComp
from ._compress_spec import CompressionError, CompressionSpec

__all__ = ["DEFAULT_BIN_SIZES", "calibrate_compression"]

#: AdaComp bin length L_T per layer type: about 50 for convolutions, 500 for fully-connected
#: and recurrent layers (recalled from the paper, not re-checked against its text).
DEFAULT_BIN_SIZES: dict[str, int] = {"conv": 50, "fc": 500, "lstm": 500, "attention": 500}


def calibrate_compression(
    gradients: Mapping[str, Iterable[Iterable[npt.ArrayLike]]],
    *,
    bin_sizes: Mapping[str, int] | None = None,
    **spec_fields: Any,
) -> CompressionSpec:
    """An AdaComp ``CompressionSpec`` whose ``layer_ratios`` come from real gradients.

    ``gradients`` maps a layer type to its iterations, each an iterable of that type's layer
    gradients (numpy arrays, in the same order every iteration). Every layer is compressed
    with its own residue, iteration after iteration, and a type's ratio is its total dense
    bytes over its total payload bytes. ``bin_sizes`` overrides ``DEFAULT_BIN_SIZES``
    (unknown types take 500); ``spec_fields`` go to ``CompressionSpec``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> steps = [[rng.standard_t(2, 20_000).astype(np.float32)] for _ in range(4)]
    >>> spec = calibrate_compression({"fc": steps})
    >>> 100 < spec.ratio_for("fc") < 400
    True
    """
    sizes = {**DEFAULT_BIN_SIZES, **(bin_sizes or {})}
    ratios: dict[str, float] = {}
    for layer_type, iterations in gradients.items():
        comp = AdaComp(bin_size=sizes.get(layer_type.lower(), 500))
        dense = payload = 0.0
        for step in iterations:
            for i, grad in enumerate(step):
                stats = comp.compress(np.asarray(grad), name=str(i)).stats
                dense += stats.dense_bytes
                payload += stats.payload_bytes
        if payload <= 0:
            raise CompressionError(f"calibrate_compression: no gradients for {layer_type!r}")
        ratios[layer_type] = dense / payload
    return CompressionSpec(method="adacomp", layer_ratios=ratios, **spec_fields)
