"""Noisy linear imputation (Rong et al., ROAD, 2022): removed pixels become the weighted mean of their neighbours.

Each removed pixel equals the weighted mean of its eight neighbours that lie
in the image (weight 1/6 for the four beside it, 1/12 for the four
diagonal ones, renormalised at the border), removed neighbours included:
one sparse linear system per image and mask, solved for all channels at
once, then Gaussian noise of standard deviation `noise` is added to the
removed pixels only. The equations are those of the authors' code (as
pytorch-grad-cam and Quantus ship it), built from index arrays instead of
element by element in a lil_matrix.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from scipy import sparse
from scipy.sparse.linalg import spsolve

# (row offset, column offset), weight
NEIGHBOURS = (((-1, -1), 1 / 12), ((-1, 0), 1 / 6), ((-1, 1), 1 / 12), ((0, -1), 1 / 6), ((0, 1), 1 / 6),
              ((1, -1), 1 / 12), ((1, 0), 1 / 6), ((1, 1), 1 / 12))


def linear_imputation(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """`image` (C, H, W) with its `removed` pixels (H, W, bool) solved for from their neighbours, as float64.

    At least one pixel must be kept: with none, the system has no unique solution.
    """
    channels, height, width = image.shape
    flat = image.reshape(channels, -1).astype(np.float64)
    removed = np.asarray(removed, dtype=bool).reshape(-1)
    unknown = np.flatnonzero(removed)
    if len(unknown) == 0:
        return flat.reshape(image.shape).copy()
    if len(unknown) == removed.size:
        raise ValueError("linear imputation needs at least one kept pixel")
    variable = np.full(removed.size, -1)
    variable[unknown] = np.arange(len(unknown))
    rows, cols = np.divmod(unknown, width)
    diagonal = np.zeros(len(unknown))
    known_sum = np.zeros((len(unknown), channels))
    entries_i, entries_j, entries_w = [], [], []
    for (dy, dx), weight in NEIGHBOURS:
        y, x = rows + dy, cols + dx
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        equation = np.flatnonzero(inside)
        neighbour = y[inside] * width + x[inside]
        diagonal[equation] += weight
        is_unknown = removed[neighbour]
        entries_i.append(equation[is_unknown])
        entries_j.append(variable[neighbour[is_unknown]])
        entries_w.append(np.full(int(is_unknown.sum()), -weight))
        # Each equation meets each offset at most once, so plain fancy-index addition is safe here.
        known_sum[equation[~is_unknown]] += weight * flat[:, neighbour[~is_unknown]].T
    diagonal_index = np.arange(len(unknown))
    system = sparse.csc_matrix((np.concatenate([*entries_w, diagonal]),
                                (np.concatenate([*entries_i, diagonal_index]),
                                 np.concatenate([*entries_j, diagonal_index]))), shape=(len(unknown),) * 2)
    solution = spsolve(system, known_sum).reshape(len(unknown), channels)
    filled = flat.copy()
    filled[:, unknown] = solution.T
    return filled.reshape(image.shape)


def noisy_linear_imputation(images: torch.Tensor, removed: torch.Tensor, noise: float = 0.01,
                            generator: np.random.Generator | None = None) -> torch.Tensor:
    """`images` (N, C, H, W) with their `removed` pixels (N, H, W) imputed, plus noise there; same dtype and device."""
    generator = generator if generator is not None else np.random.default_rng(0)
    pictures = images.detach().cpu().double().numpy()
    masks = removed.detach().cpu().numpy().astype(bool)
    # SuperLU releases the GIL: one solve per torch thread at a time.
    with ThreadPoolExecutor(max(1, min(torch.get_num_threads(), len(masks)))) as pool:
        filled = list(pool.map(linear_imputation, pictures, masks))
    for result, mask in zip(filled, masks):
        if noise:
            result[:, mask] += noise * generator.standard_normal((result.shape[0], int(mask.sum())))
    return torch.from_numpy(np.stack(filled)).to(images.device, images.dtype)
