"""Dataset readers: from the files a task names to the items its kind evaluates.

One module per kind's reader family (``classification``, ``retrieval``, ``selection``, ``multilabel``,
``association``, ``segmentation``, ``grounding``), each with its registry of formats (plugins add formats
through the ``vlbench.readers`` entry-point group, named ``<kind>.<format>``); the shared pieces: image
references (``images``), records tables (``records``, ``record_files``), webdataset shards (``wds``),
Hugging Face datasets (``hf``), mirrored folders (``mirror``), the restricted unpickler (``safe_pickle``),
ARO's word-order negatives (``aro_order``) and the procedural shapes world (``shapes``). Readers know
files, not models: embeddings are the encoder's job (``vlbench.encoding``).
"""
