"""Task files: what a task is, as data.

The schema engine (``schema``) and the generic fields every task file has (``fields``); reading a task file
with its ``include:`` bases, ``--set`` overrides and language into a ``TaskSpec`` (``taskfile``); checking
it against its kind's and formats' schemas (``checking``); the papers' named protocols (``named_protocols``);
model spec strings (``model_spec``); and the catalog of discovered task files, suites, model aliases and
adapters (``catalog``). Nothing here needs a model or a dataset: kinds and adapters are reached only through
their registries (``vlbench.registries``), and no module here imports ``kinds``, ``models`` or ``datasets``
(tests/test_layering.py).
"""
