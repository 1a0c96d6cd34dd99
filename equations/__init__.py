"""Equation files (`*.eqs`) and parameter tables (`*.yaml`) of the BioGrad model (package data)."""

if __name__ != "biograd.equations":  # one name per module: the folder is biograd's, not a top-level package
    raise ImportError(f"{__file__} is part of biograd: import biograd.equations, not {__name__}")
