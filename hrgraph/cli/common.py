"""What every command shares: errors to exit codes, signals, option definitions, output checks, generated-file headers.

Library errors (:class:`~hrgraph.errors.HrgraphError`) become one line on
stderr and exit code 1; misuse (bad options) exits 2; anything unexpected is
reported in one line with exit code 3 (``--debug`` shows the traceback).
SIGINT exits 130 and SIGTERM 143, after the clean-up that leaves no partial file.
Output piped into a reader that stops early (``hrgraph experiment G --dry-run | head -3``)
ends the command quietly with 141, as a shell reports SIGPIPE.
The command modules import this one; nothing here imports them.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

import click

from ..errors import HrgraphError
from ..files import write_atomic

EXIT_SPEC = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head -1`


def finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Option callback refusing ``nan`` and ``inf`` as misuse (exit 2).

    ``click.FloatRange`` lets them through (``nan > 0`` is false, but so is
    ``nan <= 0``), and the library would then refuse them as a spec error (exit 1).
    """
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


def fail(err: HrgraphError) -> None:
    click.echo(f"error: {err}", err=True)
    for other in getattr(err, "others", []):
        click.echo(f"error: {other}", err=True)
    omitted = getattr(err, "omitted", 0)
    if omitted:
        click.echo(f"error: ... and {omitted:,} more errors", err=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs (no temporary file is left)."""


@contextmanager
def signals_raise() -> Iterator[list[int]]:
    """While a command runs, SIGINT raises KeyboardInterrupt and SIGTERM :class:`Terminated`; yields the signals received.

    Python's default for SIGTERM is to die on the spot, leaving a half-written
    temporary file (hundreds of MB for a checkpoint).  The signals are also
    remembered because a C++ layer in between (``torch.save``) may turn the
    exception into a ``RuntimeError`` on its way up.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield received
        return

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _quiet_broken_pipe() -> None:
    """Point stdout at /dev/null: the reader is gone, and Python's final flush would complain otherwise."""
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test runner's buffer): nothing to flush at exit
        pass


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into a message and an exit code, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        with signals_raise() as received:
            try:
                return func(*args, **kwargs)
            except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
                raise
            except BaseException as err:
                if received or isinstance(err, KeyboardInterrupt):
                    terminated = signal.SIGTERM in received or isinstance(err, Terminated)
                    click.echo("terminated" if terminated else "interrupted", err=True)
                    ctx.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
                if isinstance(err, BrokenPipeError):
                    _quiet_broken_pipe()
                    ctx.exit(EXIT_BROKEN_PIPE)
                if isinstance(err, HrgraphError):
                    fail(err)
                    ctx.exit(EXIT_SPEC)
                if not isinstance(err, Exception):  # SystemExit, GeneratorExit
                    raise
                if (ctx.find_root().obj or {}).get("debug"):
                    raise
                # The CLI edge: report, do not dump a traceback.
                click.echo(f"internal error: {type(err).__name__}: {err} (rerun with --debug for details)", err=True)
                ctx.exit(EXIT_INTERNAL)

    return wrapper


def refuse_input(out: Path | None, *inputs: Path | None) -> None:
    """Refuse ``-o`` naming one of the command's input files: writing it would destroy the input."""
    if out is None:
        return
    for source in inputs:
        if source is None:
            continue
        try:
            same = os.path.samefile(out, source)
        except OSError:  # either does not exist (yet): not the same file
            same = False
        if same:
            raise click.BadParameter(
                f"'{out}' is the input file '{source}'; write the result to another file", param_hint="'-o' / '--out'"
            )


def spec_files(paths: tuple[Path, ...]) -> list[Path]:
    """The files of ``paths``, folders expanded to their ``*.yaml``."""
    return [f for p in paths for f in (sorted(p.glob("*.yaml")) if p.is_dir() else [p])]


def parse_shape(text: str | None) -> tuple[int, int, int] | None:
    """Parse ``CxHxW`` (e.g. ``3x64x64``)."""
    if text is None:
        return None
    import re

    parts = text.strip().lower().replace("*", "x").split("x")
    # Plain digits only: int() would also read "3_2" as 32 and " 3" as 3.
    values = tuple(int(p) for p in parts) if all(re.fullmatch(r"[0-9]+", p) for p in parts) else ()
    if len(values) != 3 or min(values) < 1:
        raise click.BadParameter(f"expected CxHxW with positive integers, e.g. 3x32x32, not {text!r}")
    return values  # type: ignore[return-value]


#: Above this many rows a table is printed as plain aligned text: rich measures
#: every cell through its renderer, which took 13 s for a 20,000-edge spec (and
#: 26 s for `summary` of a 4,851-edge one).
RICH_ROWS = 300


def print_table(
    console: Any,
    title: str,
    columns: list[tuple[str, str]],
    rows: list[tuple[str, ...]],
    *,
    styles: list[str | None] | None = None,
    total: tuple[str, ...] | None = None,
    rich_rows: int = RICH_ROWS,
) -> None:
    """Print a table: with rich up to ``rich_rows`` rows, else as plain columns (linear in the number of cells).

    ``columns`` are ``(title, "left" | "right")``; ``styles`` a rich style per
    row (rich only); ``total`` a last row set apart (bold, or below a rule).
    """
    if len(rows) <= rich_rows:
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for col, justify in columns:
            table.add_column(col, justify=justify, no_wrap=True)
        for i, row in enumerate(rows):
            table.add_row(*row, style=styles[i] if styles else None)
        if total is not None:
            table.add_section()
            table.add_row(*total, style="bold")
        console.print(table)
        return
    shown = rows + ([total] if total is not None else [])
    widths = [max([len(col)] + [len(row[i]) for row in shown]) for i, (col, _) in enumerate(columns)]

    def line(cells: tuple[str, ...] | list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if justify == "right" else cell.ljust(w) for cell, w, (_, justify) in zip(cells, widths, columns)
        ).rstrip()

    rule = line(["-" * w for w in widths])
    text = [title, line([col for col, _ in columns]), rule] + [line(row) for row in rows]
    text += [rule, line(total)] if total is not None else []
    click.echo("\n".join(text))


def rich_console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=max(120, Console().width))


max_activation_option = click.option(
    "--max-activation", type=click.IntRange(min=1), default=None, metavar="N",
    help="Refuse an input or node output above N elements per sample (default 2^28, 1 GiB of float32).",
)

allow_imports_option = click.option(
    "--allow-imports", is_flag=True, help="Import the Python modules a spec lists under 'imports' (runs their code)."
)
allow_outside_option = click.option(
    "--allow-outside", is_flag=True, help="Let 'extends' read files outside the spec's folder."
)


@dataclass(frozen=True)
class SpecLoading:
    """How a command loads specs: the ``load_spec`` switches that ``--allow-imports`` and ``--allow-outside`` set.

    Loading errors recommend these two options, so every command that loads a
    spec takes both (through :func:`spec_loading_options`), and passes them on
    as :attr:`kwargs` wherever a spec is loaded further down (training, grids).
    """

    allow_imports: bool = False
    allow_outside: bool = False

    @property
    def kwargs(self) -> dict[str, bool]:
        return {"allow_imports": self.allow_imports, "allow_outside": self.allow_outside}

    @property
    def flags(self) -> list[str]:
        """The options as typed, for the command line written into a generated file."""
        return ["--allow-imports"] * self.allow_imports + ["--allow-outside"] * self.allow_outside

    def load(self, source: Any) -> Any:
        """:func:`hrgraph.load_spec` of ``source`` with these switches."""
        from ..spec.models import load_spec

        return load_spec(source, **self.kwargs)


def spec_loading_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--allow-imports`` and ``--allow-outside``, given to the command as one ``loading`` argument (:class:`SpecLoading`)."""

    @wraps(func)
    def wrapper(*args: Any, allow_imports: bool, allow_outside: bool, **kwargs: Any) -> Any:
        return func(*args, loading=SpecLoading(allow_imports, allow_outside), **kwargs)

    return allow_imports_option(allow_outside_option(wrapper))


def shell_word(arg: str) -> str:
    """``arg`` quoted for a POSIX shell, on one line: control characters as bash's ``$'\\n'`` escapes."""
    import shlex

    if arg.isprintable():
        return shlex.quote(arg)
    escaped = "".join(
        ("\\" + ch if ch in "\\'" else ch) if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
        for ch in arg
    )
    return f"$'{escaped}'"


def generated_header(command: list[str], advice: str = "Change the source spec and rerun the command.") -> str:
    r"""The comment on top of a generated spec; every argument stays on its line, whatever it contains.

    ``advice`` is its second line: how to regenerate the file.

    Examples
    --------
    >>> print(generated_header(["hrgraph", "match", "a.yaml", "--name", "x\nname: it's"]), end="")
    # Generated by `hrgraph match a.yaml --name $'x\nname: it\'s'`; do not edit.
    # Change the source spec and rerun the command.
    """
    return (
        f"# Generated by `{' '.join(map(shell_word, command))}`; do not edit.\n"
        f"# {advice}\n"
    )


def emit_generated(spec: Any, command: list[str], out: Path | None, summary: str, **header: str) -> None:
    """Print a generated spec (summary on stderr) or write it atomically to ``out``.

    ``header`` is passed to :func:`generated_header` (its ``advice`` line).
    A spec over the loader's size limits is refused (:func:`~hrgraph.spec.source.check_loadable`),
    leaving no file.
    """
    from ..spec.source import check_loadable

    body = spec.to_yaml()
    if out is None:
        text = generated_header(command, **header) + body
        check_loadable(text, spec.to_dict())  # nothing printed that no command could load
        click.echo(text, nl=False)
        click.echo(summary, err=True)
        return
    text = generated_header(command + ["-o", str(out)], **header) + body
    check_loadable(text, spec.to_dict())
    write_atomic(out, text)
    click.echo(f"wrote {out}: {summary}")


def print_time(time: dict[str, Any]) -> None:
    """The unrolling of a spec with ``time``: scheme, runs per node, delayed links, MACs per step."""
    from ..build.shapes import format_count

    steps = f"{time['steps']} steps, readout {time['readout']}" if time["scheme"] == "biological" else "steps per node"
    click.echo(f"time: {time['scheme']}, {steps}")
    own = time["node_steps"]
    click.echo(
        "runs per node: "
        + ", ".join(f"{n} {r}" + (f"/{own[n]}" if r != own[n] else "") for n, r in time["node_runs"].items())
    )
    if time["delayed"]:
        click.echo("delayed: " + ", ".join(f"{d['from']}->{d['to']} ({d['role']}, delay {d['delay']})" for d in time["delayed"]))
    click.echo("MACs per step: " + ", ".join(f"{k}: {format_count(v)}" for k, v in time["step_macs"].items()))
    if time.get("step_norms"):
        copies = ", ".join(f"{m} x{len(steps)}" for m, steps in time["step_norms"].items())
        click.echo(f"norms per step (step_norm: per_step): {copies}")
