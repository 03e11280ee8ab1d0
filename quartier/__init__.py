"""Quartier: a neighbourhood's rooftop solar as a local, verifiable energy economy."""

__version__ = "0.1.0"
