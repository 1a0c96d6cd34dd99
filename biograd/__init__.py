"""BioGrad in Brian2: multi-compartment spiking networks that learn with local, event-based gradients."""

from biograd.signals import exit_on_stop

__version__ = "0.1.0"

exit_on_stop()  # in the biograd program only: a stop signal while Python loads its modules is one line
