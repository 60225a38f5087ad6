"""``loanbus idlc FILE.idl -o OUTDIR``: the IDL compiler's command line.

It says which structs are loanable and which are not, and warns (on stderr, in the same
form as errors) where the default pool of a loanable struct would not fit in /dev/shm here.
Errors are reported as ``file:line:column: message`` with the offending line and a caret,
and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rich_click as click

from loanbus.idl import IdlError
from loanbus.idl.checker import check
from loanbus.idl.compiler import write_c, write_examples, write_python
from loanbus.idl.report import pool_warnings, shm_free_bytes, summary


@click.command()
@click.argument("idl_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", "outdir", required=True,
    type=click.Path(file_okay=False, path_type=Path), help="Directory to write into.",
)  # fmt: skip
@click.option(
    "--lang", type=click.Choice(["python", "c"]), default="python", show_default=True,
    help="python: a package of loanable classes; c: a header with the structs and pool ABI.",
)  # fmt: skip
@click.option(
    "--example", is_flag=True,
    help="Also write publisher.py and subscriber.py for the SHMEM_REF types.",
)  # fmt: skip
@click.option(
    "-I", "--include", "include_dirs", multiple=True,
    type=click.Path(file_okay=False, path_type=Path), help="Search DIR for #include files.",
)  # fmt: skip
def idlc(idl_file: Path, outdir: Path, lang: str, example: bool, include_dirs: tuple[Path, ...]) -> None:
    """Compile FILE.idl (OMG IDL, @transfer_mode(SHMEM_REF) types) for loanbus."""
    if example and lang != "python":
        raise click.UsageError("--example writes Python examples: use it with --lang python")
    try:
        spec = check(str(idl_file), include_dirs)
    except IdlError as exc:
        click.echo(exc.render(), err=True)
        sys.exit(2)
    for line in summary(spec):
        click.echo(f"{idl_file}: {line}")
    free = shm_free_bytes()
    if free is not None:
        for warning in pool_warnings(spec, free):
            click.echo(warning.render(), err=True)
    try:
        if lang == "c":
            written = write_c(spec, str(idl_file), outdir)
        else:
            written = write_python(spec, str(idl_file), outdir)
            if example:
                written += write_examples(spec, str(idl_file), outdir)
                if not spec.loanable:
                    click.echo(f"{idl_file}: no SHMEM_REF type, so no examples", err=True)
    except OSError as exc:
        click.echo(f"cannot write to {outdir}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    for path in written:
        click.echo(f"wrote {path}")


if __name__ == "__main__":
    idlc()
