"""Container engines: what the build path needs of one (protocol), the Docker Engine, the
commit fallback and the build contexts."""
