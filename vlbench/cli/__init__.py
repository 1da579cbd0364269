"""The ``vlbench`` command line: the typer app, its shared options and one-line errors.

The commands live beside this module, one module per group: ``run_command`` (run), ``catalog_commands``
(list, show, schema), ``results_commands`` (leaderboard, report, rescore, compare), ``cache_commands``
(cache info, cache clear). They are thin: each builds its settings and calls the wing that does the work.
"""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable

import typer

from vlbench import paths
from vlbench.encoding import DECODE_PATHS
from vlbench.errors import VLBenchError
from vlbench.spec.model_spec import PRECISION_NAMES
from vlbench.results import TABLE_FORMATS

app = typer.Typer(
    help="Zero-shot evaluation of vision-language models.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1
DEBUG_ENV = "VLBENCH_DEBUG"


_debug = {"on": False}


def debug_enabled() -> bool:
    """--debug (any command) or $VLBENCH_DEBUG=1: show tracebacks instead of one-line errors."""
    import os

    return _debug["on"] or os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error (also $VLBENCH_DEBUG=1).")) -> None:
    _debug["on"] = debug


def _error_line(message: str) -> None:
    from rich.markup import escape

    from vlbench.console import error_console

    message = " ".join(message.split())
    error_console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True, emoji=False)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print an error as one line on stderr (the traceback too with --debug) and exit non-zero.

    User errors (VLBenchError) exit 2; anything else is reported as an internal error and exits 1;
    Ctrl-C exits 130 and SIGTERM 143, after the task in flight has removed its temporary files.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import traceback

        from vlbench.console import error_console
        from vlbench.signals import Terminated, terminate_as_interrupt

        try:
            with terminate_as_interrupt():
                return command(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt as exc:
            what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            error_console.print(f"{what}; finished tasks are saved, the task in flight is not", highlight=False)
            raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
        except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
            if debug_enabled():
                traceback.print_exc()
            if isinstance(exc, VLBenchError):
                _error_line(str(exc))
                raise typer.Exit(EXIT_USER_ERROR) from None
            first = (str(exc).strip().splitlines() or [""])[0]
            _error_line(f"internal error: {type(exc).__name__}: {first}" + ("" if debug_enabled() else " (--debug shows the traceback)"))
            raise typer.Exit(EXIT_INTERNAL_ERROR) from None

    return wrapper


def _catalog(tasks_dir: list[Path] | None, registry: list[Path] | None) -> Any:
    from vlbench.spec.catalog import Catalog

    return Catalog.load(tasks_dir or [], registry or [])


CacheDirOption = typer.Option(None, "--cache-dir", help="Persistent embedding cache (default: $VLBENCH_CACHE, else ~/.cache/vlbench/embeddings).")


def _cache_dir(option: Path | None) -> Path:
    from vlbench.encoding.cache import default_cache_dir

    return option.expanduser() if option is not None else default_cache_dir()


TasksDirOption = typer.Option(None, "--tasks-dir", help="Extra folder of task YAML files (repeatable; also $VLBENCH_TASKS_PATH).")
RegistryOption = typer.Option(None, "--registry", help="Extra registry.yaml merged over the built-in one (repeatable; also $VLBENCH_REGISTRY).")
ResultsDirArgument = typer.Argument(paths.default_results_dir(), help="Folder of result files.")
IncludePartialOption = typer.Option(False, "--include-partial", help="Include results of --limit runs (a full run is still preferred).")


def _require_folder(results_dir: Path) -> None:
    if not results_dir.is_dir():
        raise VLBenchError(f"results folder not found: {results_dir}")


class Output(str, Enum):
    table = "table"
    json = "json"


OutputOption = typer.Option(Output.table, "--format", help="table (tab-separated when piped) or json.")


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# the choices of --precision, --decode and --format come from the code that implements them
Precision = Enum("Precision", {name: name for name in PRECISION_NAMES}, type=str)  # type: ignore[misc]
Decode = Enum("Decode", {name: name for name in DECODE_PATHS}, type=str)  # type: ignore[misc]


SettingsOption = typer.Option([], "--settings", help="Show runs with these settings, KEY=VALUE (e.g. precision=bf16, protocol.window=112); repeatable. Default: runs with default settings only.")


def _wanted_settings(items: list[str]) -> dict[str, str]:
    """``--settings KEY=VALUE`` options as a dict."""
    wanted = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise VLBenchError(f"--settings '{item}' must be KEY=VALUE, e.g. precision=bf16")
        wanted[key] = value
    return wanted


def _warn(message: str) -> None:
    """A warning line on stderr (e.g. a result file that is skipped)."""
    from vlbench.console import error_console

    error_console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


Format = Enum("Format", {name: name for name in TABLE_FORMATS}, type=str)  # type: ignore[misc]


def main() -> None:
    # --debug is accepted after any command too ('vlbench run --debug'), not only before it
    argv = sys.argv[1:]
    if "--debug" in argv and argv[0] != "--debug":
        argv = ["--debug", *[a for a in argv if a != "--debug"]]
    app(args=argv, prog_name="vlbench")


# the command groups register themselves on ``app``
from vlbench.cli import cache_commands, catalog_commands, results_commands, run_command  # noqa: E402,F401,I001
