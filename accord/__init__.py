"""Shared pieces of Accord: the wire contract, federation config, errors, TLS and Arrow IPC."""
