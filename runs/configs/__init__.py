"""The run configs (YAML). They install with the package as ``biograd.configs``, so that ``biograd demo`` finds
its config (``demo.yaml``) wherever the package is installed."""
