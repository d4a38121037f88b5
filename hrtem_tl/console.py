"""The terminal: progress bars and warnings that matter; library chatter goes to a log file (``--verbose``: both).

``setup`` sends every log record at INFO and above (ours, Dask's, papermill's, Python warnings) to a log file,
and only warnings and errors to the terminal, where the stage progress bars run. Dask's ``distributed`` loggers
come with their own terminal handlers; they are rerouted through the same two.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CHATTY = ("distributed", "dask", "tornado", "asyncio", "papermill", "nbclient", "traitlets", "numba", "fsspec",
          "matplotlib", "PIL", "sphinx", "urllib3", "jupyter_client")


def setup(verbose: bool = False, log_file: str | Path | None = None) -> Path | None:
    """Route logging: the terminal gets WARNING+ (INFO+ with ``verbose``), ``log_file`` gets INFO+ always."""
    try:  # distributed installs its own handlers at import; import it first, then take them over
        import distributed  # noqa: F401
    except ImportError:
        pass
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_hrtem_tl", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.INFO)
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.INFO if verbose else logging.WARNING)
    terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    terminal.addFilter(_not_shutdown_noise)
    handlers = [terminal]
    if log_file is not None:
        log_file = Path(log_file)
        to_file = _LazyFileHandler(log_file, encoding="utf-8", delay=True)
        to_file.setLevel(logging.INFO)
        to_file.setFormatter(logging.Formatter(FORMAT))
        handlers.append(to_file)
    for handler in handlers:
        handler._hrtem_tl = True
        root.addHandler(handler)
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in CHATTY:
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.INFO)
    logging.captureWarnings(True)
    return log_file


# warnings of a cluster closing after every task finished, about nothing the run made (the log file keeps them):
# a nanny that kills a worker process which took more than 4 s to exit (seen at the end of a cpu book's training)
SHUTDOWN_NOISE = ("Worker process still alive after",)


def _not_shutdown_noise(record: logging.LogRecord) -> bool:
    return not (record.name.startswith("distributed") and any(n in record.getMessage() for n in SHUTDOWN_NOISE))


class _LazyFileHandler(logging.FileHandler):
    """A log file made (folder included) at the first record: a command that fails on its input writes nothing."""

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()
