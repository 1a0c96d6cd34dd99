"""Analysis: backprop reference, gradient alignment and biological plausibility."""

if __name__ != "biograd.analysis":  # one name per module: the folder is biograd's, not a top-level package
    raise ImportError(f"{__file__} is part of biograd: import biograd.analysis, not {__name__}")
