"""Class-name lists: a text file (one name per line, label order), or the class names of a registered benchmark.

``--classes imagenet1k`` / ``--classes voc`` are the class names of the registered benchmark of that name (found
through the registry, as any plugin benchmark's are); any other value is a file. A file of that name wins over a
benchmark name.
"""

from __future__ import annotations

from pathlib import Path

from oodbench.errors import UserError


def read_classnames(path: str | Path) -> tuple[str, ...]:
    """Class names from a text file, one per line in label order (blank lines and ``#`` comments ignored).

    Raises:
        UserError: the file cannot be read or holds no name.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise UserError(f"class names: cannot read {path} ({why}); give a text file with one class name per "
                        "line") from None
    names = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not names:
        raise UserError(f"class names: {path} holds no class name; write one name per line")
    return names


def resolve_classnames(value: str | Path) -> tuple[tuple[str, ...], str]:
    """``(names, where they came from)`` for a ``--classes`` value: a file, else a registered benchmark's names.

    Raises:
        UserError: neither a readable file nor a registered benchmark (the message lists the benchmarks).
    """
    p = Path(value).expanduser()
    if p.is_file():
        return read_classnames(p), str(p.resolve())
    from oodbench.registry import names, registry

    text = str(value)
    if text in registry("benchmarks"):
        from oodbench.benchmark import get_benchmark

        spec = get_benchmark(text)
        return tuple(spec.class_names), f"benchmark {spec.name}"
    what = "is not a file" if p.exists() else "no such file"
    raise UserError(f"--classes {value}: {what}, and no registered benchmark of that name; give a text file with "
                    f"one class name per line, or one of: {', '.join(names('benchmarks'))}")
