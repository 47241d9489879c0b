"""servelab: measure, simulate and learn inference-server concurrency."""
__version__ = "0.1.0"
