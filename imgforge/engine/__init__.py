"""Container engines: the Docker Engine (build), and later the commit fallback."""
