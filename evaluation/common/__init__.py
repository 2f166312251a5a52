"""Helpers shared by every benchmark (exist exactly once): MC letters, JSON reading, paths, metrics."""
