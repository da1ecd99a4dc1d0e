"""Record of paper 41, DiST: global-shape sensitivity vs style-transfer resistance (Wen, Li, Jing & Lee,
ICLR 2024 Re-Align workshop)."""

from paperzoo.papers import Record

RECORD = Record(
    number=41,
    summary=(
        "Argues that the cue-conflict shape bias (resistance to style transfer) is not sensitivity to global shape "
        "and proposes DiST, an odd-one-out test: an original and two texture-preserving, configuration-destroying "
        "disruptions; a model that encodes global configuration singles out the original (chance 1/3). Here: "
        "vectorised framed tile shuffles whose local control scores exactly chance, Gram texture synthesis, the "
        "odd-one-out score with tie credit for any feature function, DiSTinguish training and the cue-conflict "
        "shape bias."
    ),
    components=(
        "paperzoo.analysis.shape_bias.FramedTileShuffle",
        "paperzoo.analysis.shape_bias.TileShuffle",
        "paperzoo.analysis.shape_bias.GramTextureDisruptor",
        "paperzoo.analysis.shape_bias.make_dist_triplets",
        "paperzoo.analysis.shape_bias.odd_one_out",
        "paperzoo.analysis.shape_bias.dist_accuracy",
        "paperzoo.analysis.shape_bias.dist_scores",
        "paperzoo.analysis.shape_bias.dist_accuracy_loader",
        "paperzoo.analysis.shape_bias.plot_dist",
        "paperzoo.analysis.shape_bias.local_bag_control",
        "paperzoo.analysis.shape_bias.penultimate_features",
        "paperzoo.analysis.shape_bias.DiSTinguishLoss",
        "paperzoo.analysis.shape_bias.DiSTinguishObjective",
        "paperzoo.analysis.shape_bias.phase_amplitude_swap",
        "paperzoo.analysis.shape_bias.shape_bias",
        "paperzoo.models.pretrained.efficientnet_lite0_features",
    ),
    usage="""\
import torch
from paperzoo.analysis.shape_bias import FramedTileShuffle, dist_accuracy, local_bag_control, make_dist_triplets
from paperzoo.data import load_digits
x = torch.nn.functional.interpolate(torch.from_numpy(load_digits().x[:300]), size=(16, 16), mode="nearest")
triplets = make_dist_triplets(x, FramedTileShuffle(grid=4, frame=1), seed=0)  # (x_framed, d1, d2)
print(dist_accuracy(lambda im: im.flatten(1), triplets).accuracy)  # raw pixels: near chance
print(dist_accuracy(local_bag_control(3), triplets).accuracy)  # 3x3 bag of local features: exactly 1/3
print(dist_accuracy(local_bag_control(5), triplets).accuracy)  # 5x5: local relations between tiles
""",
    paper_result=(
        "DiST (2,400 ImageNet images, each with two texture-synthesis disruptions; odd one out): models with high "
        "cue-conflict shape bias (e.g. Stylized-ImageNet training) do not do well on DiST, supervised ViTs have no "
        "advantage over CNNs, self-supervised training (especially MAE) improves DiST, DiST sensitivity and style "
        "resistance are orthogonal, and DiSTinguish training is complementary to style-transfer training; "
        "accuracies unconfirmed"
    ),
)
