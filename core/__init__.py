"""servelab.core"""
