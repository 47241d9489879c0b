"""servelab.ffi"""
