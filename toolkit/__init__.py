"""ftk: a face-embedding model from training to an Android phone.

Importing the package is cheap: torch, litert_torch, ai_edge_litert and facenet_pytorch are imported only inside
the functions that need them, so `ftk --help` answers instantly.
"""

__version__ = "0.1.0"
