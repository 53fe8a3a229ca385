"""Friend recommendation by link prediction: graph algorithms, evaluation protocol, models."""
