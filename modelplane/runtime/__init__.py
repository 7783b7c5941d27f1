"""The scoring runtime copied into every image (as `modelplane_runtime`).

It depends only on the standard library, the official azureml-inference-server-http, PyJWT (token
auth) and prometheus-client (metrics), never on the rest of Modelplane, because it runs inside the
user's image.
"""
