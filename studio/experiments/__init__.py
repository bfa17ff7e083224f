"""Experiments: records with arms and conclusions, sweeps and evals with every output, the emergent log."""
