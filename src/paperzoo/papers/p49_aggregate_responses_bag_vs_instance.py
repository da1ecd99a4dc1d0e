"""Record of paper 49, learning from aggregate responses: instance-level versus bag-level loss
functions (Javanmard, Chen, Mirrokni, Badanidiyuru & Fu, ICLR 2024)."""

from paperzoo.papers import Record

RECORD = Record(
    number=49,
    summary=(
        "When responses are released only as bag averages, the instance-level squared loss (every prediction "
        "against its bag's mean response) equals the bag-level loss (each bag's mean prediction against it) plus "
        "the within-bag variance of the predictions, so it is a regularised, biased, lower-variance bag loss. The "
        "interpolating estimator L_bag + rho * R trades the two; for linear regression with Gaussian design its "
        "bias and variance have deterministic asymptotic limits and the best rho is often strictly inside (0, 1). "
        "Here: the three losses (bag means with index_add_), the linear closed form, random bags, the Laplace "
        "label-DP aggregation, a whole-bag batch sampler and the exact and asymptotic bias/variance."
    ),
    components=(
        "paperzoo.losses.bag_level_loss",
        "paperzoo.losses.instance_level_loss",
        "paperzoo.losses.within_bag_variance",
        "paperzoo.losses.interpolating_aggregate_loss",
        "paperzoo.losses.InterpolatingAggregateLoss",
        "paperzoo.losses.BagLevelLoss",
        "paperzoo.losses.InstanceLevelLoss",
        "paperzoo.losses.bag_mean_predictions",
        "paperzoo.losses.fit_linear_aggregate",
        "paperzoo.data.bags.make_random_bags",
        "paperzoo.data.bags.aggregate_responses",
        "paperzoo.data.bags.laplace_label_dp_aggregates",
        "paperzoo.data.bags.dp_noise_scale",
        "paperzoo.data.bags.BagBatchSampler",
        "paperzoo.data.bags.make_linear_bag_data",
        "paperzoo.analysis.aggregate_risk.asymptotic_bias_variance",
        "paperzoo.analysis.aggregate_risk.conditional_bias_variance",
    ),
    usage="""\
import torch
from paperzoo.analysis.aggregate_risk import asymptotic_bias_variance
from paperzoo.data.bags import make_linear_bag_data
from paperzoo.losses import InterpolatingAggregateLoss, bag_level_loss, fit_linear_aggregate, within_bag_variance
data = make_linear_bag_data(n=1000, d=50, bag_size=5, noise_std=2.0, seed=0)  # only data.ybar is observed
pred = data.X @ torch.zeros(50, dtype=torch.float64, requires_grad=True)
loss = InterpolatingAggregateLoss(rho=0.3)(pred, data.ybar, data.bag_index)  # L_bag + 0.3 R, differentiable
theta = fit_linear_aggregate(data.X, data.ybar, data.bag_index, rho=0.3)  # closed-form minimiser
print(float(((theta - data.theta) ** 2).sum()), asymptotic_bias_variance(1000, 50, 5, 0.3, 4.0).risk)
""",
    paper_result=(
        "Synthetic linear regression (d = 100): the finite-sample bias and risk of the interpolating estimator match "
        "its asymptotic formulas and, with a tuned rho, its risk is strictly below both the bag-level and the "
        "instance-level losses'; on Boston Housing with a neural network the instance-level loss beats the bag-level "
        "one for larger bags and interpolation is best; under label DP the optimal bag size shows a phase "
        "transition (exact numbers unconfirmed)"
    ),
)
