"""STC-Cacher: reuse ViT computation across frames of a stream."""

from stc.cacher.state import CacherState, CacherStats

__all__ = ["CacherState", "CacherStats"]
