"""Registries read from the classes themselves: a class with a ``name`` is listed."""


def _subclasses(base):
    """Every subclass of ``base`` at any depth, nearest first."""
    pending = list(base.__subclasses__())
    while pending:
        cls = pending.pop(0)
        yield cls
        pending.extend(cls.__subclasses__())


def by_name(base, **extra):
    """name → class for every subclass of ``base`` (at any depth) whose ``name`` is set.

    ``extra`` adds entries for classes outside the hierarchy.  A subclass
    keeps the name of its parent unless it sets its own.
    """
    found = dict(extra)
    for cls in _subclasses(base):
        if cls.name is not None:
            found.setdefault(cls.name, cls)
    return found


def by_class_name(base):
    """class name → class for every public subclass of ``base`` (at any depth).

    Model files name layers and schedules so.  Names starting with an
    underscore (shared private bases) are left out; of two classes with the
    same name, the one nearer ``base`` is kept.
    """
    found = {}
    for cls in _subclasses(base):
        if not cls.__name__.startswith("_"):
            found.setdefault(cls.__name__, cls)
    return found
