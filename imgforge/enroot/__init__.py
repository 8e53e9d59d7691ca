"""What NVIDIA's enroot makes of a Docker image on import (``enroot import dockerd://``),
written by imgforge itself: the configuration files it adds to the root filesystem and
the changes it makes to the exported tree, and what of an image enroot can't carry.

The reference is enroot 4.1.2's ``src/docker.sh`` (``docker::configure``, ``docker::daemon``)
and ``src/common.sh`` (``common::fixperms``, ``common::envsubst``, ``common::envfmt``).
"""
