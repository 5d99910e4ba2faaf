"""Which methods and attributes a v1 program uses on SDK objects that mlpipe's classes lack.

A missing *name* fails at the import, but a missing *method* fails halfway through a pipeline
program, after compute was set up and data uploaded. So ``mlpipe migrate`` also reads what the
program does with SDK objects, statically (``ast``; the program is never run and no SDK object
is ever constructed), and reports ``x.method`` that the object's class does not have.

Inference is deliberately small and conservative, since a false report is worse than a missed
one: a variable has a type only when *every* binding of that name in the file gives the same
known type (``ws = Workspace.from_config()``, ``run = exp.submit(p)``), types of calls come from
the SDK's own return annotations, and anything else (a tuple target, a function parameter, a
``with`` target, a value of type ``Any``) makes the name unknown and unchecked.
"""

from __future__ import annotations

import ast
import collections.abc
import functools
import inspect
import sys
import textwrap
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mlpipe_provider import sdk

# Names whose value is a module standing for the flat namespace (``aml`` of
# ``import azureml.core as aml``, or the ``azureml`` root of ``import azureml.core``).
_MODULE = "<module>"
# Generic containers whose element type ``for x in ...`` and ``[...]`` give.
_SEQUENCES = (
    list,
    tuple,
    set,
    frozenset,
    collections.abc.Iterable,
    collections.abc.Iterator,
    collections.abc.Sequence,
    collections.abc.Generator,
)
_MAPPINGS = (dict, collections.abc.Mapping)
_FIXPOINT_ROUNDS = 8


@dataclass(frozen=True)
class Missing:
    """``Class.member`` used on line ``line``, which mlpipe's class does not provide."""

    name: str
    line: int


@dataclass(frozen=True)
class _Class:
    """The class object itself (``Workspace`` in ``Workspace.from_config()``)."""

    cls: type


@dataclass(frozen=True)
class _Method:
    """A member looked up on a class or an instance, to be called."""

    owner: type
    name: str


# An inferred value: a type (class or generic alias: an instance of it), _Class, _Method or _MODULE.
Value = Any


def _is_azureml(module: str | None) -> bool:
    return module is not None and (module == "azureml" or module.startswith("azureml."))


def _is_sdk(module: str | None) -> bool:
    return module == sdk.__name__ or _is_azureml(module)


@functools.cache
def _sdk_namespace() -> dict[str, Any]:
    """Locals for evaluating SDK annotations: the flat namespace, so a forward reference to a
    class that a module imports only under TYPE_CHECKING still resolves. Built on first need
    (it imports every SDK module), so a file with no typed SDK objects never pays for it."""
    return {name: getattr(sdk, name) for name in sdk.SUPPORTED_NAMES}


def _mlpipe_class(value: Value) -> type | None:
    """The class to check members against: only mlpipe's own, never a not-supported stub
    (using one is already reported, and it raises anyway) nor a builtin."""
    if not isinstance(value, type):
        return None
    module = getattr(value, "__module__", "") or ""
    if not module.startswith("mlpipe_provider.") or module == "mlpipe_provider.sdk.unsupported":
        return None
    return value


def _normalise(hint: Any, owner: type) -> Value:
    """A return annotation as an inferred value: ``X | None`` is ``X``; ``Self`` is the owner."""
    if hint is typing.Self:
        return owner
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _normalise(args[0], owner) if len(args) == 1 else None
    if isinstance(hint, type) or origin is not None:
        return hint
    return None


@functools.cache
def _return_hint(owner: type, name: str) -> Value:
    """The SDK's own annotation of what ``owner.name(...)`` (or the property) returns."""
    raw = None
    for klass in owner.__mro__:
        if name in vars(klass):
            raw = vars(klass)[name]
            break
    if isinstance(raw, (staticmethod, classmethod)):
        raw = raw.__func__
    elif isinstance(raw, property):
        raw = raw.fget
    if not callable(raw):
        return None
    try:
        hints = typing.get_type_hints(raw, localns=_sdk_namespace())
    except Exception:  # an annotation that does not evaluate here: unknown, so unchecked
        return None
    return _normalise(hints.get("return"), owner)


@functools.cache
def _instance_attributes(cls: type) -> frozenset[str]:
    """``self.X = ...`` anywhere in the class's (and its bases') methods, plus annotated
    class-body names: the attributes an instance gets without the class listing them."""
    found: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or klass.__module__ == "builtins":
            continue
        found.update(getattr(klass, "__slots__", ()) or ())
        found.update(getattr(klass, "__annotations__", {}) or {})
        tree = _class_tree(klass)
        for node in ast.walk(tree) if tree is not None else ():
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ):
                found.add(node.attr)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "setattr"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
            ):
                found.add(node.args[1].value)
    return frozenset(found)


@functools.cache
def _open_ended(cls: type) -> bool:
    """A class with its own ``__getattr__`` answers any name: nothing can be said about it."""
    return any("__getattr__" in vars(k) for k in cls.__mro__ if k is not object)


def _subclasses(cls: type) -> list[type]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


def has_member(cls: type, name: str) -> bool:
    """Whether ``cls`` or any subclass has ``name``: an SDK method annotated to return a base
    class (``Dataset.get_by_name -> AbstractDataset``) may return any of its subclasses."""
    return any(
        _open_ended(klass)
        or inspect.getattr_static(klass, name, None) is not None
        or hasattr(klass, name)
        or name in _instance_attributes(klass)
        for klass in _subclasses(cls)
    )


def _class_tree(klass: type) -> ast.AST | None:
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(klass)))
    except (OSError, TypeError, SyntaxError):
        return None


def _assigned_type(klass: type, node: ast.stmt) -> Value:
    """The type ``self.X = C(...)`` or ``self.X: T = ...`` gives, in the class's own module."""
    namespace = {**_sdk_namespace(), **vars(sys.modules[klass.__module__])}
    if isinstance(node, ast.AnnAssign):
        try:
            return _normalise(eval(ast.unparse(node.annotation), namespace), klass)  # noqa: S307
        except Exception:  # an annotation that does not evaluate here: unknown
            return None
    value = getattr(node, "value", None)
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        found = namespace.get(value.func.id)
        return found if isinstance(found, type) else None
    return None


def _stored_attributes(target: ast.expr) -> list[ast.Attribute]:
    """The attributes an assignment target sets (``a.b`` of ``a.b, c = ...``), not the ones it
    only reads on the way (``self.env`` of ``self.env.x = 1``)."""
    if isinstance(target, ast.Attribute):
        return [target]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [a for elt in target.elts for a in _stored_attributes(elt)]
    if isinstance(target, ast.Starred):
        return _stored_attributes(target.value)
    return []


@functools.cache
def _attribute_type(cls: type, name: str) -> Value:
    """An instance attribute's type, when every ``self.name = ...`` in the class's source
    (and its bases') says the same: ``RunConfiguration().environment`` is an Environment."""
    seen: list[Value] = []
    for klass in cls.__mro__:
        if klass is object or not klass.__module__.startswith("mlpipe_provider."):
            continue
        tree = _class_tree(klass)
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets = [node.target]
            else:
                continue
            for target in targets:
                plain = not isinstance(node, ast.AugAssign)
                for sub in _stored_attributes(target):
                    value = sub.value
                    if sub.attr == name and isinstance(value, ast.Name) and value.id == "self":
                        typed = plain and target is sub
                        seen.append(_assigned_type(klass, node) if typed else None)
    if seen and seen[0] is not None and all(v == seen[0] for v in seen):
        return seen[0]
    return None


def _accepts(cls: type, method: str | None, keyword: str) -> bool:
    """Whether ``cls(...)`` (``method`` None) or ``cls.method(...)`` takes ``keyword=``, in
    ``cls`` or any subclass (an annotation may name a base class); unknown counts as yes."""
    for klass in _subclasses(cls):
        target = klass if method is None else inspect.getattr_static(klass, method, None)
        if isinstance(target, (staticmethod, classmethod)):
            target = target.__func__
        try:
            parameters = inspect.signature(target).parameters.values()  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return True
        for parameter in parameters:
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                return True
            if parameter.name == keyword and parameter.kind is not parameter.POSITIONAL_ONLY:
                return True
    return False


def _element(value: Value, mapping_value: bool) -> Value:
    """What iterating (or, for a mapping, subscripting) a value of this generic type gives."""
    origin = typing.get_origin(value)
    args = typing.get_args(value)
    if origin in _MAPPINGS and len(args) == 2:
        return _normalise(args[1] if mapping_value else args[0], object)
    if origin in _SEQUENCES and args and (len(args) == 1 or args[-1] is Ellipsis):
        return _normalise(args[0], object)
    return None


class _Checker:
    def __init__(self, tree: ast.Module, provided: set[str]) -> None:
        self.tree = tree
        self.provided = provided
        self.bindings: dict[str, list[tuple[str, Any]]] = {}
        self.env: dict[str, Value] = {}
        self._collect()

    # -- what each name is bound to -------------------------------------------------------
    def _bind(self, name: str, kind: str, payload: Any = None) -> None:
        self.bindings.setdefault(name, []).append((kind, payload))

    def _bind_target(self, target: ast.expr, kind: str, payload: Any) -> None:
        if isinstance(target, ast.Name):
            self._bind(target.id, kind, payload)
        else:  # tuples, starred, attributes, subscripts: their names are unknown
            for node in ast.walk(target):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    self._bind(node.id, "unknown")

    def _sdk_object(self, name: str) -> Value:
        if name not in self.provided or name not in sdk.__all__:
            return None
        value = getattr(sdk, name, None)
        return _Class(value) if isinstance(value, type) else None

    def _collect(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname is None:
                        # ``import azureml.core`` binds ``azureml``: a path to the SDK's names
                        root = alias.name.partition(".")[0]
                        stands_for_sdk = root in ("azureml", "mlpipe_provider")
                        self._bind(root, "value" if stands_for_sdk else "unknown", _MODULE)
                    else:
                        stands_for_sdk = _is_sdk(alias.name) or alias.name.startswith(
                            f"{sdk.__name__}."
                        )
                        kind = "value" if stands_for_sdk else "unknown"
                        self._bind(alias.asname, kind, _MODULE)
            elif isinstance(node, ast.ImportFrom):
                from_sdk = node.level == 0 and _is_sdk(node.module)
                for alias in node.names:
                    if alias.name == "*":
                        continue
                    local = alias.asname or alias.name
                    if from_sdk and alias.name in self.provided:
                        self._bind(local, "value", self._sdk_object(alias.name))
                    elif node.level == 0 and (
                        (node.module == "mlpipe_provider" and alias.name == "sdk")
                        or (_is_azureml(node.module) and alias.name.islower())
                    ):
                        self._bind(local, "value", _MODULE)
                    else:
                        self._bind(local, "unknown")
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    self._bind_target(target, "expr", node.value)
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                self._bind_target(node.target, "expr", node.value)
            elif isinstance(node, ast.AugAssign):
                self._bind_target(node.target, "unknown", None)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                self._bind_target(node.target, "iter", node.iter)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self._bind(node.name, "except", node.type)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self._bind(node.name, "unknown")
            elif isinstance(node, ast.arg):
                self._bind(node.arg, "unknown")
            elif isinstance(node, (ast.withitem,)) and node.optional_vars is not None:
                self._bind_target(node.optional_vars, "unknown", None)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                for name in node.names:
                    self._bind(name, "unknown")
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                self._bind(node.name, "unknown")
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self._bind(node.rest, "unknown")
            elif isinstance(node, ast.Delete):
                for target in node.targets:
                    self._bind_target(target, "unknown", None)

    def _binding_value(self, kind: str, payload: Any) -> Value:
        if kind == "value":
            return payload
        if kind == "expr":
            return self.infer(payload)
        if kind == "iter":
            return _element(self.infer(payload), mapping_value=False)
        if kind == "except":
            caught = self.infer(payload) if payload is not None else None
            return caught.cls if isinstance(caught, _Class) else None
        return None

    def solve(self) -> None:
        """Flow-insensitive: a name is typed when all its bindings agree; iterate, since
        ``run = exp.submit(p)`` needs ``exp`` typed first."""
        for _ in range(_FIXPOINT_ROUNDS):
            env: dict[str, Value] = {}
            for name, bindings in self.bindings.items():
                values = [self._binding_value(kind, payload) for kind, payload in bindings]
                if values and values[0] is not None and all(v == values[0] for v in values):
                    env[name] = values[0]
            if env == self.env:
                return
            self.env = env

    # -- what an expression is ------------------------------------------------------------
    def infer(self, node: ast.expr) -> Value:
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.Attribute):
            return self._attribute(self.infer(node.value), node.attr)
        if isinstance(node, ast.Call):
            func = self.infer(node.func)
            if isinstance(func, _Class):
                return func.cls if _mlpipe_class(func.cls) else None
            if isinstance(func, _Method):
                return _return_hint(func.owner, func.name)
            return None
        if isinstance(node, ast.Subscript):
            return _element(self.infer(node.value), mapping_value=True)
        return None

    def _attribute(self, value: Value, attr: str) -> Value:
        if value is _MODULE:
            if attr in self.provided:
                return self._sdk_object(attr)
            return _MODULE  # a submodule on the way (``azureml.core``)
        if isinstance(value, _Class):
            cls = _mlpipe_class(value.cls)
            if cls is None:
                return None
            member = inspect.getattr_static(cls, attr, None)
            return (
                _Method(cls, attr)
                if callable(member) or isinstance(member, (staticmethod, classmethod))
                else None
            )
        cls = _mlpipe_class(value)
        if cls is None:
            return None
        member = inspect.getattr_static(cls, attr, None)
        if isinstance(member, property):
            return _return_hint(cls, attr)
        if callable(member) or isinstance(member, (staticmethod, classmethod)):
            return _Method(cls, attr)
        if member is None:
            return _attribute_type(cls, attr)
        return None

    # -- the report -----------------------------------------------------------------------
    def missing(self) -> list[Missing]:
        self.solve()
        attributes = [n for n in ast.walk(self.tree) if isinstance(n, ast.Attribute)]
        stored: set[tuple[type, str]] = set()
        for node in attributes:
            if isinstance(node.ctx, ast.Store):
                owner = self._owner(node)
                if owner is not None:
                    stored.add((owner, node.attr))
        found: list[Missing] = []
        for node in attributes:
            if isinstance(node.ctx, ast.Store) or node.attr.startswith("_"):
                # Setting a new attribute works (and v1 objects took it too); a private name
                # is the program's own business, not v1's API.
                continue
            owner = self._owner(node)
            if owner is None or (owner, node.attr) in stored or has_member(owner, node.attr):
                continue
            found.append(Missing(f"{owner.__name__}.{node.attr}", node.end_lineno or node.lineno))
        found.extend(self._missing_keywords())
        return found

    def _missing_keywords(self) -> list[Missing]:
        """``PythonScriptStep(..., some_v1_option=...)`` that mlpipe's signature lacks."""
        found: list[Missing] = []
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Call) or not node.keywords:
                continue
            func = self.infer(node.func)
            if isinstance(func, _Class) and _mlpipe_class(func.cls):
                cls, method, label = func.cls, None, func.cls.__name__
            elif isinstance(func, _Method):
                cls, method, label = func.owner, func.name, f"{func.owner.__name__}.{func.name}"
            else:
                continue
            for keyword in node.keywords:
                if keyword.arg is None or keyword.arg.startswith("_"):
                    continue
                if not _accepts(cls, method, keyword.arg):
                    found.append(Missing(f"{label}({keyword.arg}=...)", keyword.lineno))
        return found

    def _owner(self, node: ast.Attribute) -> type | None:
        value = self.infer(node.value)
        if isinstance(value, _Class):
            return _mlpipe_class(value.cls)
        return _mlpipe_class(value)


def missing_members(tree: ast.Module, provided: Iterable[str] | None = None) -> list[Missing]:
    """Every ``x.member`` on an object of a known SDK class that the class lacks."""
    names = set(provided) if provided is not None else set(sdk.__all__)
    return _Checker(tree, names).missing()
