"""When to try a failed delivery again: QStash's backoff and the `Upstash-Retry-Delay` language.

- Default backoff (shared/docs/qstash-protocol.md 5.2): after the n-th failed attempt
  (n >= 1) the next one is due `min(86400, e^(2.5 n))` seconds later: 12 s, 2m28s, 30m8s,
  6h7m, then a day. The embedded server multiplies it by `retry_scale` so tests run fast.
- `Upstash-Retry-Delay` replaces it with an expression in milliseconds over `retried` (the
  number of retries made before the attempt that just failed, starting at 0), using numbers,
  `+ - * / %`, parentheses and `pow sqrt abs exp floor ceil round min max`. It is not scaled.
- Expressions are parsed with `ast` and evaluated by a small walker that knows only those
  nodes; `eval()` is never used. All arithmetic is in floats, so a huge power overflows at
  once instead of computing a gigantic integer; results are clamped to [0, one day].
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from app.errors import BadRequest

MAX_DELAY_S = 86_400.0
MAX_EXPRESSION_LENGTH = 500
MAX_NODES = 100

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, tuple[Callable[..., float], int | None]] = {
    "pow": (math.pow, 2),
    "sqrt": (math.sqrt, 1),
    "abs": (abs, 1),
    "exp": (math.exp, 1),
    "floor": (lambda x: float(math.floor(x)), 1),
    "ceil": (lambda x: float(math.ceil(x)), 1),
    "round": (lambda x: float(round(x)), 1),
    "min": (min, None),
    "max": (max, None),
}
VARIABLE = "retried"


class ExpressionError(BadRequest):
    """An `Upstash-Retry-Delay` expression outside the grammar, or one that cannot be computed."""


def default_backoff_s(failed_attempts: int, *, scale: float = 1.0) -> float:
    """QStash's delay before the next attempt after `failed_attempts` (>= 1) failures."""
    exponent = 2.5 * max(1, failed_attempts)
    return min(MAX_DELAY_S, math.exp(min(exponent, 50.0))) * scale


def parse_expression(expression: str) -> ast.Expression:
    """Parse and check an expression; raise `ExpressionError` if it leaves the grammar."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"Upstash-Retry-Delay is longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"Upstash-Retry-Delay {expression!r} is not a valid expression") from exc
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ExpressionError(f"Upstash-Retry-Delay {expression!r} is too complex")
    _Checker(expression).visit(tree)
    return tree


def evaluate_delay_ms(expression: str, retried: int) -> float:
    """The delay in milliseconds the expression gives for `retried`, clamped to [0, one day]."""
    tree = parse_expression(expression)
    try:
        value = _evaluate(tree.body, float(retried))
    except (OverflowError, ZeroDivisionError, ValueError) as exc:
        raise ExpressionError(f"Upstash-Retry-Delay {expression!r} failed for retried={retried}: {exc}") from exc
    if math.isnan(value):
        raise ExpressionError(f"Upstash-Retry-Delay {expression!r} is not a number for retried={retried}")
    return min(max(value, 0.0), MAX_DELAY_S * 1000)


class _Checker(ast.NodeVisitor):
    """Rejects every node the retry-delay grammar does not have."""

    def __init__(self, expression: str) -> None:
        self.expression = expression

    def _reject(self, what: str) -> None:
        raise ExpressionError(
            f"Upstash-Retry-Delay {self.expression!r}: {what} is not allowed; use numbers, `retried`, "
            f"+ - * / %, parentheses and {', '.join(_FUNCTIONS)}"
        )

    def generic_visit(self, node: ast.AST) -> None:
        allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Load)
        allowed += tuple(_BINARY) + tuple(_UNARY)
        if not isinstance(node, allowed):
            self._reject(type(node).__name__)
        super().generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            self._reject(f"the constant {node.value!r}")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id != VARIABLE:
            self._reject(f"the name {node.id!r}")

    def visit_Call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            self._reject("calling anything but the listed functions")
        if node.keywords:
            self._reject("a keyword argument")
        arity = _FUNCTIONS[node.func.id][1]
        if (arity is not None and len(node.args) != arity) or not node.args:
            self._reject(f"{node.func.id}() with {len(node.args)} arguments")
        for arg in node.args:
            self.visit(arg)


def _evaluate(node: ast.expr, retried: float) -> float:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return retried
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, retried))
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, retried), _evaluate(node.right, retried)
        return float(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        function = _FUNCTIONS[node.func.id][0]
        return float(function(*(_evaluate(arg, retried) for arg in node.args)))
    raise ExpressionError(f"unexpected {type(node).__name__} in a checked expression")
