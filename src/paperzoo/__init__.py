"""paperzoo: tested, reusable PyTorch components and offline reproductions of 53 recent
machine-learning papers, behind one consistent API.

Importing ``paperzoo`` is light; import subpackages (``paperzoo.losses``,
``paperzoo.data``, ...) for components, and see ``paperzoo.catalog`` for what exists.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
