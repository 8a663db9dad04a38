"""Studies that show backpropagation at work, each a ``fastnn study`` command.

``landscapes``  every optimizer on small surfaces (``fastnn study landscapes``);
``vanishing``   per-layer speed of learning, Nielsen ch. 5 (``fastnn study vanishing``);
``cli``         the command line, including ``fastnn study graph``.
"""
