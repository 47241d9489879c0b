"""servelab.servers"""
