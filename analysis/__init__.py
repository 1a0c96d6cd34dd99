"""Analysis: backprop reference, gradient alignment and biological plausibility."""
