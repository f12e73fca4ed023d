"""The explorer: ``cnnviz serve``, a local web app over a documented JSON API where the models given on the
command line are explained across methods, layers and units. Imports interpret's faces only.

Example:
    >>> from cnnviz.explorer import create_app
    >>> app = create_app(["fashion_cnn"], device="cpu")
"""

from cnnviz.explorer.app import create_app

__all__ = ["create_app"]
