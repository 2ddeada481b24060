"""Saliency quality metrics."""
