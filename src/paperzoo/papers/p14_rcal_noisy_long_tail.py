"""Record of paper 14, RCAL: representation calibration for noisy long-tailed labels (Zhang et al., ICCV 2023)."""

from paperzoo.papers import Record

RECORD = Record(
    number=14,
    summary=(
        "RCAL learns representations without labels (contrastive pre-training), models each noisy class as a "
        "Gaussian over them after removing Local-Outlier-Factor outliers, lets tail classes borrow the mean and "
        "covariance of their nearest head classes, samples synthetic representations to re-balance the classifier, "
        "and keeps each sample's representation close to its contrastive one (individual calibration) while training "
        "the classifier with mixup."
    ),
    components=(
        "paperzoo.training.rcal.robust_class_gaussians",
        "paperzoo.training.rcal.calibrate_tail_statistics",
        "paperzoo.training.rcal.sample_calibrated_features",
        "paperzoo.training.rcal.RCALObjective",
        "paperzoo.training.rcal.fit_rcal",
        "paperzoo.training.rcal.contrastive_pretrain",
        "paperzoo.training.rcal.nt_xent",
        "paperzoo.losses.IndividualCalibrationLoss",
        "paperzoo.losses.individual_calibration_loss",
    ),
    usage="""\
import torch
from paperzoo.training.rcal import calibrate_tail_statistics, robust_class_gaussians, sample_calibrated_features
z = torch.randn(300, 8)  # label-free representations
y = torch.cat([torch.zeros(200), torch.ones(80), torch.full((20,), 2)]).long()  # noisy long-tailed labels
stats = robust_class_gaussians(z, y)  # LOF outlier removal, then mean / covariance per class
counts = torch.bincount(y).tolist()
calibrated = calibrate_tail_statistics(stats, counts, q=2)  # class 2 borrows from its 2 nearest head classes
z_syn, y_syn = sample_calibrated_features(calibrated, counts)  # every class up to 200
assert torch.bincount(y_syn).tolist() == [0, 120, 180]
""",
    paper_result=(
        "CIFAR-10/100 made long-tailed (imbalance ratios such as 10 and 100) with symmetric label noise (about "
        "0.1-0.5), ResNet-32 with MoCo pre-training: RCAL beats cross-entropy, long-tail methods (LDAM, BBN, MiSLAS), "
        "noisy-label methods (Co-teaching, DivideMix, ELR) and joint methods in overall accuracy, and both of its "
        "calibrations help in ablations (exact numbers unconfirmed)"
    ),
)
