"""OCI registries without an engine: the SIF published as an ORAS artifact beside the image."""
