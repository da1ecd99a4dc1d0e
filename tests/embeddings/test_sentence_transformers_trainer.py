"""The text-embedding losses inside sentence-transformers' own trainer (the way its users train)."""

import pytest
import torch

from paperzoo.models.text_encoders import minilm_available

pytestmark = pytest.mark.skipif(not minilm_available(), reason="the 'text' extra is not installed")
datasets = pytest.importorskip("datasets")


def test_focal_loss_trains_minilm_in_the_trainer(tmp_path):
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MatryoshkaLoss

    from paperzoo.embeddings.focal_infonce import FocalMultipleNegativesRankingLoss
    from paperzoo.models.text_encoders import load_minilm

    torch.manual_seed(0)
    model = load_minilm(trainable=True)
    anchors = ["red dress", "blue trousers", "green bag", "yellow sneaker", "black coat", "white shirt"]
    positives = [
        "a dress in red",
        "trousers that are blue",
        "a bag coloured green",
        "a yellow running shoe",
        "a coat in black",
        "a shirt in white",
    ]
    negatives = ["a red coat", "blue shorts", "a green hat", "a yellow sandal", "a black dress", "a white bag"]
    train = datasets.Dataset.from_dict({"anchor": anchors, "positive": positives, "negative": negatives})
    loss = MatryoshkaLoss(model, FocalMultipleNegativesRankingLoss(model, scale=20.0, gamma=1.0), [384, 64])
    before = [p.detach().clone() for p in model.parameters()]
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=3,
        max_steps=2,
        learning_rate=1e-4,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    result = SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=loss).train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))
