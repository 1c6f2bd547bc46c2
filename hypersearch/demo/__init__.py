"""The bundled demo: an MLP on scikit-learn's digits, tuned from the command line."""
