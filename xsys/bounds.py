"""Range checks for config sections: one message form for every key (``workers: must be
> 0, got 0``), so each section's ``validate`` names its keys and its bound, nothing more.
Ground level: imports only the standard library."""

from __future__ import annotations


def at_least(section: object, names: tuple[str, ...], minimum: float, *,
             strictly: bool = False) -> None:
    """Raise ``ValueError`` (``"<name>: must be >= <minimum>, got <value>"``, or ``>``
    when ``strictly``) for the first attribute of ``section`` in ``names`` below the bound.
    NaN never passes."""
    for name in names:
        value = getattr(section, name)
        ok = value > minimum if strictly else value >= minimum
        if not ok:
            raise ValueError(f"{name}: must be {'>' if strictly else '>='} {minimum}, "
                             f"got {value}")
