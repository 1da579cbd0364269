"""Task files: what a task is, as data.

The schema engine (``schema``) and the generic fields every task file has (``fields``); reading a task file
with its ``include:`` bases, ``--set`` overrides and language into a ``TaskSpec`` (``taskfile``); checking
it against its kind's and formats' schemas (``checking``); the papers' named protocols (``named_protocols``);
and the catalog of discovered task files, suites, model aliases and adapters (``catalog``). Nothing here
needs a model or a dataset; kinds are reached only through their registry.
"""
