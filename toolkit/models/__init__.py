"""Backbones, the classifier head and the head-less embedding wrapper that gets exported."""
