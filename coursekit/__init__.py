"""coursekit: the machinery of the content-based image retrieval course.

The package reads like the retrieval pipeline::

    image -> local features or CNN maps -> encoding or pooling -> global vector
          -> index -> ranking -> re-ranking -> evaluation

Start with :mod:`coursekit.datasets` (what we search), :mod:`coursekit.evaluation`
(how we measure) and :mod:`coursekit.methods` (every end-to-end method).
"""

__version__ = "0.1.0"
