"""The scoring runtime copied into every image (as `modelplane_runtime`).

It depends only on the standard library and the official azureml-inference-server-http, never on
the rest of Modelplane, because it runs inside the user's image.
"""
