"""Result files and what is made of them.

The typed result schema and its layout on disk (``schema``), atomic writing and per-sample files (``io``),
the results folder's housekeeping (``housekeeping``), which result fills a table cell and how suites combine
(``selection``), the tables and their export formats (``tables``), confidence intervals from per-sample
records (``intervals``), rescoring and paired comparisons without the model (``rescore``, ``compare``) and
the static HTML report (``report``). Nothing here loads a model.
"""

#: The formats of a table (``vlbench.results.tables.RENDERERS`` has one renderer each; ``long`` is one row per
#: model, task and metric); kept here so that the command line names them without importing the tables.
TABLE_FORMATS = ("csv", "tsv", "md", "json", "html", "long")
