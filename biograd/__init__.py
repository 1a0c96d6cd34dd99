"""BioGrad in Brian2: multi-compartment spiking networks that learn with local, event-based gradients."""

__version__ = "0.1.0"
