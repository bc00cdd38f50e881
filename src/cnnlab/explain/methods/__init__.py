"""One module per explanation method (or family); each registers its map functions with `register_method`.

Every module in this package is imported when the registry is first used, so
a new method is one new file here and its reference test.
"""
