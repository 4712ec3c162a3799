"""cbid_meta: cross-scale self-supervised blind deblurring with implicit neural representations."""
__version__ = "0.1.0"
