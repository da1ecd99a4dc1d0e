import numpy as np
import pytest
import torch

from paperzoo.data.shapes_grid import SHAPES, make_shapes_grid, shape_templates


def test_shapes_and_targets():
    d = make_shapes_grid(200, seed=3)
    assert len(d) == 200 and d.num_classes == len(SHAPES) == 4
    assert d.x.shape == (200, 1, 32, 32) and d.x.dtype == torch.float32
    assert d.y.dtype == torch.int64 and set(d.y.tolist()) <= {0, 1, 2, 3}
    assert d.concepts.shape == (200, 4) and d.spatial.shape == (200, 16, 4)
    annotated = ~torch.isnan(d.spatial).any(-1)
    assert torch.equal(annotated.sum(1), torch.full((200,), 3))  # three objects, distinct cells
    assert torch.equal(d.spatial[annotated].sum(-1), torch.ones(600))  # one-hot on occupied cells
    assert bool(torch.isnan(d.spatial[~annotated]).all())  # NaN rows on empty cells
    # the global concepts are the shapes present; the class is the unique most frequent one
    counts = torch.nn.functional.one_hot(d.shapes, 4).sum(1)
    assert torch.equal(d.concepts, (counts > 0).float())
    top = counts.max(1).values
    assert torch.equal((counts == top[:, None]).sum(1), torch.ones(200, dtype=torch.long))
    assert torch.equal(counts.argmax(1), d.y)
    # spatial targets agree with the object list
    rows = torch.arange(200)[:, None]
    assert torch.equal(d.spatial[rows, d.cells].argmax(-1), d.shapes)


def test_objects_are_drawn_in_their_cells():
    d = make_shapes_grid(50, seed=0, noise=0.0)
    cells = d.x[:, 0].reshape(50, 4, 8, 4, 8).permute(0, 1, 3, 2, 4).reshape(50, 16, 8, 8)
    ink = cells.flatten(2).amax(-1)
    occupied = ~torch.isnan(d.spatial).any(-1)
    assert bool((ink[occupied] >= 0.5).all()) and bool((ink[~occupied] == 0).all())
    area = (cells.flatten(2) > 0).sum(-1)
    expected = torch.from_numpy(shape_templates(6).reshape(4, -1).sum(1))
    assert torch.equal(area[occupied], expected[d.spatial[occupied].argmax(-1)])


def test_deterministic_and_seed_dependent():
    a, b, c = make_shapes_grid(20, seed=1), make_shapes_grid(20, seed=1), make_shapes_grid(20, seed=2)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)


def test_templates_are_distinct():
    t = shape_templates(6)
    flat = t.reshape(4, -1)
    assert len({tuple(r) for r in flat.tolist()}) == 4
    assert np.array_equal(t[3], t[3].T) and t[0].sum() == 36 and t[1].sum() == 20


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be"),
        ({"n": 5, "n_objects": 17}, "n_objects"),
        ({"n": 5, "cell": 4, "jitter": 1}, "cell - 2"),
        ({"n": 5, "noise": -0.1}, "noise"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_shapes_grid(**kwargs)
