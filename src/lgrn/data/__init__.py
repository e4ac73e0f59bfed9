"""Data: dataset readers (one Sample record type), preparation, transforms, pose balancing,
synthetic faces and the Dataset."""
from .sample import Sample

__all__ = ["Sample"]
