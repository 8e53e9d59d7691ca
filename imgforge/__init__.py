"""imgforge: build paired Docker images and Singularity images from TOML recipes."""

__version__ = "0.2.0"
