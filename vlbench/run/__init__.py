"""``vlbench run`` below the command line: from the run's settings to written results.

The run settings, each with one owner (``settings``); the plan of (model, task) cells (``planner``); the loop
that loads each model once and runs its pending cells (``runner``); the result writer that owns per-sample
files, artifacts, the atomic result and the clean-up of replaced files (``writer``); and the split of a grid
into job-array shards (``shards``).
"""
