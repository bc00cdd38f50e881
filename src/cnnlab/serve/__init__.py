"""`cnnlab serve`: a local web page to drop an image and see what the network sees, and its JSON API.

    from cnnlab.serve import serve, create_app
    serve("pretrained:efficientnet_lite0")                    # http://127.0.0.1:8000/
    app = create_app("runs/digits")                            # an ASGI app, e.g. for Starlette's TestClient

A thin layer over the library: predictions are `LoadedModel.predict`, maps
are the registry's methods (`cnnlab.explain.METHODS`), overlays are
`render.overlay`. Safe by default: loopback, a token on any other address,
bounded bodies, pixels and queue, strict security headers.
"""

from cnnlab.serve.app import create_app
from cnnlab.serve.server import serve

__all__ = ["create_app", "serve"]
