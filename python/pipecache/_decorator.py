"""Pipeline.cached: a decorator that answers a function's calls through process_request."""
import functools
import inspect


def cached(self, request_type, *, ignore=("self", "cls")):
    """Decorates a function returning str or bytes so that its calls go through
    process_request(request_type, params, ...).

    params are the function's arguments bound by name, defaults applied, each value turned
    into text with str() (so two calls that differ only in how arguments were passed share
    one key). Arguments named in `ignore` are left out of the key (by default self and cls,
    so methods work); *args and **kwargs parameters are part of the key under their own
    names. A hit returns the type the function returned (str or bytes).

        @pipeline.cached("events_by_range")
        def events_by_range(start, end, tz="UTC"):
            ...
    """
    if not isinstance(request_type, str):
        raise TypeError("cached() takes the request type: @pipeline.cached(\"events_by_range\")")
    ignored = frozenset(ignore)

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            params = {}
            for name, value in bound.arguments.items():
                if name in ignored:
                    continue
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    for k, v in value.items():
                        params[f"{name}.{k}"] = str(v)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    for i, v in enumerate(value):
                        params[f"{name}.{i}"] = str(v)
                else:
                    params[name] = str(value)
            return self.process_request(request_type, params, lambda: fn(*args, **kwargs))

        wrapper.request_type = request_type
        return wrapper

    return decorate
