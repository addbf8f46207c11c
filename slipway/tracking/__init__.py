"""Experiment tracking: the fluent API, the client, and the stores behind them."""
