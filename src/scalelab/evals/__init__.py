"""Evaluations: scoring primitives and the world's labelled eval sets."""
