"""Engines other than this machine's own processes that Slipway can run work on.

Each engine is an optional extra, imported only by the code that uses it:
:mod:`slipway.engines.ray` (``pip install 'slipway[ray]'``).
"""
