"""A squashfs 4.0 writer that packs a tar stream and reuses compressed data blocks.

See :mod:`imgforge.squashfs.writer` for the entry point and docs/ARCHITECTURE.md for
where it sits.
"""
