"""Wiring: the command line, the demo, and the processes it starts.

The only package that may import both ``broker`` and ``adapters``.
"""
