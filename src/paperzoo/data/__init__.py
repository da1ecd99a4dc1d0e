"""Offline data: image sets with ``.npy`` caching, generators, splits and samplers.

Nothing here downloads. The image sets come from packages that ship them (see
:mod:`paperzoo.data.install`, behind ``paperzoo data install``), from scikit-learn's bundled
digits, or from the generators in :mod:`paperzoo.data.synthetic`.
"""

from paperzoo.data.cache import DatasetNotInstalledError, cache_dir, data_home, save_npy_atomic
from paperzoo.data.images import (
    ImageSet,
    load_animal_mnist,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_union30,
)
from paperzoo.data.install import dataset_status, install_datasets
from paperzoo.data.splits import (
    Episode,
    EpisodeSampler,
    GCDSplit,
    gcd_split,
    held_out_class_split,
    m_per_class_sampler,
)
from paperzoo.data.synthetic import (
    DisGenParams,
    LabelShiftDomains,
    dis_gen_gaussian_params,
    gaussian_mixture,
    label_noise,
    label_shift_domains,
    long_tailed,
    make_dis_gen_gaussian,
    make_long_tailed,
)

__all__ = [
    "DatasetNotInstalledError",
    "DisGenParams",
    "Episode",
    "EpisodeSampler",
    "GCDSplit",
    "ImageSet",
    "LabelShiftDomains",
    "cache_dir",
    "data_home",
    "dataset_status",
    "dis_gen_gaussian_params",
    "gaussian_mixture",
    "gcd_split",
    "held_out_class_split",
    "install_datasets",
    "label_noise",
    "label_shift_domains",
    "load_animal_mnist",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_union30",
    "long_tailed",
    "m_per_class_sampler",
    "make_dis_gen_gaussian",
    "make_long_tailed",
    "save_npy_atomic",
]
