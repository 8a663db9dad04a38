"""Registries read from the classes themselves: a class with a ``name`` is listed."""


def by_name(base, **extra):
    """name → class for every subclass of ``base`` (at any depth) whose ``name`` is set.

    ``extra`` adds entries for classes outside the hierarchy.  A subclass
    keeps the name of its parent unless it sets its own.
    """
    found, pending = dict(extra), list(base.__subclasses__())
    while pending:
        cls = pending.pop(0)
        if cls.name is not None:
            found.setdefault(cls.name, cls)
        pending.extend(cls.__subclasses__())
    return found
