"""GeNN 5 backend: the Brian2 network translated to pygenn models (translate), and run (runner)."""
