"""Network builders: BioGrad layers as Brian2 groups assembled from the equation files."""
