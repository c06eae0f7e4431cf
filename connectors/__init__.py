"""Connectors: Bytewax sources and sinks, one per real system."""
