"""qmtl."""
