"""Record of paper 17, gradient descent on logistic regression with large step sizes (Tyurin, 2024)."""

from paperzoo.papers import Record

RECORD = Record(
    number=17,
    summary=(
        "On linearly separable data, gradient descent on the logistic loss (LR+GD) with step gamma, divided by "
        "gamma, tends to the Batch Perceptron as gamma grows: LR+GD separates the data for any step size, faster "
        "with larger steps, while its loss and gradient norm grow and oscillate, so they are unreliable progress "
        "measures. The Batch Perceptron needs Omega(n) steps on a 2-D data set; Normalized LR+GD, which rescales "
        "the step by the inverse mean sigmoid weight, tends to the Normalized Batch Perceptron and separates in "
        "R^2/mu^2 + 2 log(2n - 1)/(gamma mu^2) steps."
    ),
    components=(
        "paperzoo.analysis.large_step_gd.gd_logistic",
        "paperzoo.analysis.large_step_gd.batch_perceptron",
        "paperzoo.analysis.large_step_gd.perceptron",
        "paperzoo.analysis.large_step_gd.reduction_gap",
        "paperzoo.analysis.large_step_gd.pre_separation_stats",
        "paperzoo.analysis.large_step_gd.hard_margin",
        "paperzoo.analysis.large_step_gd.separation_bounds",
        "paperzoo.analysis.large_step_gd.logistic_loss",
        "paperzoo.analysis.large_step_gd.logistic_grad",
        "paperzoo.analysis.large_step_gd.perceptron_loss",
        "paperzoo.analysis.large_step_gd.logistic_smoothness",
        "paperzoo.analysis.large_step_gd.normalized_step_factor",
        "paperzoo.analysis.large_step_gd.thm41_dataset",
        "paperzoo.analysis.large_step_gd.worst_case_dataset",
        "paperzoo.analysis.large_step_gd.binary_subset",
        "paperzoo.analysis.large_step_gd.gaussian_margin_data",
    ),
    usage="""\
from paperzoo.analysis.large_step_gd import batch_perceptron, gd_logistic, worst_case_dataset
A, y = worst_case_dataset(100)  # the paper's Theorem 5.1 data
lr = gd_logistic(A, y, [0.1, 1.0, 10.0, 100.0])  # all step sizes in one vectorised run
nlr = gd_logistic(A, y, [0.1, 1.0, 10.0, 100.0], normalized=True)
print(lr["iters_to_separate"].tolist(), nlr["iters_to_separate"].tolist())  # [5615, 561, 55, 31] [110, 11, 2, 2]
print(int(batch_perceptron(A, y)["iters_to_separate"]))  # 31: LR+GD at gamma = 100 matches its limit
""",
    paper_result=(
        "LR+GD with large steps tracks the Batch Perceptron on two-class subsets of CIFAR-10, FashionMNIST, "
        "EuroSAT and MNIST (5000 samples): larger steps give higher loss and gradient norm before separation but "
        "faster separation; Table 1: on the Theorem 5.1 worst case Normalized LR+GD separates in 2 iterations "
        "(gamma 10, 100) vs 308 for LR+GD (gamma 100), and on imbalanced FashionMNIST in 311 vs 538, while plain "
        "LR+GD is slightly faster on balanced FashionMNIST (2778 vs 3160); class pairs, preprocessing and "
        "imbalance ratios unconfirmed"
    ),
)
