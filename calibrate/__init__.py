"""servelab.calibrate"""
