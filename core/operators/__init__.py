"""Batch implementations of the stateful operators, split by family.

Stateless steps have no module here: :mod:`core.fusion` generates one loop for a whole chain.
"""
