"""The ``cnnviz`` command line, built on the public ``zoo`` and ``interpret`` APIs only."""
