"""binarycat: a DuckDB catalogue of binary stars found in survey stamps and light curves.

The sub-packages depend on each other in one direction only::

    cli -> pipeline -> queries, model, ingest -> catalog

so a notebook can use any layer without the ones above it.
"""

from binarycat.errors import BinarycatError

__version__ = "0.1.0"

__all__ = ["BinarycatError", "__version__"]
