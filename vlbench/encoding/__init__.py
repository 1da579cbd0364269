"""Turning images and texts into embeddings, once.

The batched ``Encoder`` and its run-wide memory (``encoder``), the persistent embedding cache shared by runs
and processes (``cache``), the exact uint8 transport of the PIL path (``transport``), the ``--decode gpu``
path (``gpu_decode``) and the data-parallel encoder that gives each torchrun rank its share (``sharded``).
Kinds ask the encoder for embeddings and never see the cache, the decoders or the ranks.
"""

#: The image paths of --decode: PIL in loader workers (the reference numbers), or torchvision.io (``gpu_decode``).
DECODE_PATHS = ("pil", "gpu")
