"""Small helpers every layer may use: atomic file output, scalar conversions, error types."""
