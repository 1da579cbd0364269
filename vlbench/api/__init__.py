"""vlbench as a library: the run command as a function, typed results as data.

``evaluate`` runs tasks on a model (a spec string, a ``ModelAdapter``, an open_clip or transformers
model object, or any object with ``encode_image`` / ``encode_text``) through the same planner, runner
and result writer as ``vlbench run`` (``vlbench.run``), and returns ``EvaluationResults``;
``load_results`` reads a results folder into a pandas DataFrame; ``Evaluator`` is built once from
tasks and called with a model each time (a training loop), with the tasks' data read and their images
decoded once. In-memory models are named by ``vlbench.models.in_memory``. ``import vlbench`` exposes these
names lazily, so importing the package stays cheap.
"""

from vlbench.api.evaluate import evaluate
from vlbench.api.evaluator import Evaluator
from vlbench.api.results import EvaluationResults, TaskResult, load_results

__all__ = ["evaluate", "Evaluator", "EvaluationResults", "TaskResult", "load_results"]
