"""Synthetic EV fleet and charging network with ground truth (`generator`): the pipeline's embedded default input."""
