"""Network builders: BioGrad layers as Brian2 groups assembled from the equation files."""

if __name__ != "biograd.models":  # one name per module: the folder is biograd's, not a top-level package
    raise ImportError(f"{__file__} is part of biograd: import biograd.models, not {__name__}")
