"""icgen: an open-source analog IC design assistant for the two-stage Miller op-amp, verified by ngspice."""
__version__ = "0.1.0"
