"""estlab's version: one string, imported by ``estlab`` and by the exporter.

Its own module so that ``estlab.export`` stamps exports with it without
importing the root package (``estlab/__init__.py`` re-exports it as
``estlab.__version__``). pyproject.toml's ``version`` must equal it.
"""
__version__ = "0.1.0"
