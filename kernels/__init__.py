"""Implementations of the op table (``fastnn.optable``), one sub-package per backend."""
