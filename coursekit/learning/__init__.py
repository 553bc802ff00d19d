"""Learning descriptors for retrieval from matching and non-matching images (notebook 08).

- :mod:`coursekit.learning.losses`: the contrastive loss (siamese pairs) and the triplet loss, in torch.
- :mod:`coursekit.learning.mining`: hard negatives from a pool (at most one per object), random
  negatives as a baseline, and matching pairs drawn from labels.
- :mod:`coursekit.learning.finetune`: fine-tuning the last blocks of a CNN and GeM's p on cached
  trunk maps, hard negatives re-mined every epoch, checkpoints that resume.
- :mod:`coursekit.learning.pairs`: matching pairs without labels (BoW short lists verified by RANSAC),
  their connected components as pseudo-labels, and their quality against true labels.
- :mod:`coursekit.learning.drlim`: DrLIM's two-dimensional map of scikit-learn's digits, trained from pairs.

Learned whitening from matching pairs (Radenovic's "Lw") is
:func:`coursekit.whitening.fit_learned_whitening`, beside PCA-whitening.
"""
