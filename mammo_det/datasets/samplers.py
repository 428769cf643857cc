"""Sampling negatives per epoch: ~89 % of real mammograms have no finding."""
from __future__ import annotations

import math
from typing import Iterator, Optional

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.registry import DATA_SAMPLERS
from torch.utils.data import Sampler


@DATA_SAMPLERS.register_module()
class PositiveNegativeSampler(Sampler):
    """Every image with a finding each epoch, plus a fresh random share of the negatives.

    Like mmengine's ``DefaultSampler`` (shuffled, seeded, split across ranks, ``set_epoch``), but an epoch is
    all positives + ``neg_fraction`` of the negatives, drawn anew every epoch so all negatives are seen over
    training.

    Args:
        dataset: a dataset whose ``get_data_info(i)['instances']`` lists the boxes.
        neg_fraction: share of the negatives drawn per epoch (1.0: all, as DefaultSampler).
        seed: random seed, synchronised across ranks when None.
    """

    def __init__(self, dataset, neg_fraction: float = 0.25, seed: Optional[int] = None, round_up: bool = True):
        if not 0.0 <= neg_fraction <= 1.0:
            raise ValueError(f'neg_fraction must be in [0, 1], got {neg_fraction}')
        self.dataset = dataset
        self.neg_fraction = neg_fraction
        self.seed = sync_random_seed() if seed is None else seed
        self.rank, self.world_size = get_dist_info()
        self.round_up = round_up
        has_box = np.array([len(dataset.get_data_info(i)['instances']) > 0 for i in range(len(dataset))])
        self.positives = np.flatnonzero(has_box)
        self.negatives = np.flatnonzero(~has_box)
        self.epoch = 0
        n = len(self.positives) + int(round(self.neg_fraction * len(self.negatives)))
        self.num_samples = math.ceil(n / self.world_size) if round_up else math.ceil((n - self.rank) / self.world_size)
        self.total_size = self.num_samples * self.world_size

    def _epoch_indices(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed + self.epoch)
        k = int(round(self.neg_fraction * len(self.negatives)))
        negs = rng.choice(self.negatives, size=k, replace=False) if k else np.zeros(0, int)
        return rng.permutation(np.concatenate([self.positives, negs]))

    def __iter__(self) -> Iterator[int]:
        idx = self._epoch_indices().tolist()
        if self.round_up and idx:
            idx = (idx * int(self.total_size / len(idx) + 1))[:self.total_size]
        return iter(idx[self.rank:self.total_size:self.world_size])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
