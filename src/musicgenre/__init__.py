"""musicgenre: classify music into genres with small neural networks."""

__version__ = "0.1.0"
