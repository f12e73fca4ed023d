"""The static HTML gallery (``cnnviz gallery``). Not built yet: see the open gallery issue."""
