"""Writing recipes: ``imgforge init`` and ``imgforge import`` of a Dockerfile or a .def."""
