"""Equation files (`*.eqs`) and parameter tables (`*.yaml`) of the BioGrad model (package data)."""
