"""Generalized category discovery (GCD): the shared parts of the SimGCD baseline (Wen, Zhao & Qi,
ICCV 2023) that every discovery method here builds on: the heads (a weight-normalised cosine
classifier and the DINO-style projector head), the loss terms as small composable modules
(supervised cross-entropy, cross-view self-distillation with a linear teacher-temperature
warm-up, the mean-entropy regulariser, the unsupervised and supervised contrastive terms over
pytorch-metric-learning) combined by ``SimGCDLoss``, the two-view augmentations for images and
for frozen feature vectors, the labelled/unlabelled weighted sampler, a GCD ``compute_loss`` that
:func:`paperzoo.engine.fit` drives (with a list of extra term modules: a later method is its new
terms and nothing else), prediction, and a k-means baseline. Import each from its module."""
