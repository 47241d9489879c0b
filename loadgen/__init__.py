"""servelab.loadgen"""
