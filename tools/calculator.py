"""Calculator[expr]: arithmetic evaluated by walking a whitelisted `ast`, never `eval`."""

from __future__ import annotations

import ast
import math
import operator
import re
from typing import Callable, Union

from tools.base import ToolContext, ToolSpec

CALCULATOR_SPEC = ToolSpec(
    name="Calculator",
    description="Evaluates an arithmetic expression: + - * / // % ** and parentheses, and "
                "sqrt, log, ln, exp, sin, cos, tan, abs, round, floor, ceil, factorial, min, "
                "max, pi, e.",
    usage="Calculator[expression], e.g. Calculator[(1,250 + 3.5) * 2 / sqrt(16)]",
)

Number = Union[int, float]

MAX_INPUT_CHARS = 500
MAX_DIGITS = 1000                      # largest integer result, in decimal digits
_MAX_BITS = int(MAX_DIGITS * math.log2(10)) + 1
MAX_FACTORIAL = 450                    # 450! has 1001 digits; larger is refused up front
_FLOAT_DIGITS = 400                    # round(float, n) is the same for every |n| past this


class CalcError(ValueError):
    """A problem with the expression, worded for the agent."""


def _check_size(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise CalcError(f"the result has more than {MAX_DIGITS} digits")
    if isinstance(value, float) and math.isnan(value):
        raise CalcError("the result is not a number")
    return value


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log2(abs(base)) > _MAX_BITS:
            raise CalcError(f"the result has more than {MAX_DIGITS} digits")
    result = base ** exponent
    if isinstance(result, complex):
        raise CalcError("a negative number cannot be raised to a fractional power")
    return result


def _divide(a: Number, b: Number) -> Number:
    if isinstance(a, int) and isinstance(b, int) and b != 0 and a % b == 0:
        return a // b  # stays exact for big integers
    return a / b


def _factorial(n: Number) -> int:
    if isinstance(n, float):
        if not n.is_integer():
            raise CalcError("factorial needs a whole number")
        n = int(n)
    if n < 0:
        raise CalcError("factorial needs a non-negative number")
    if n > MAX_FACTORIAL:
        raise CalcError(f"factorial is limited to n <= {MAX_FACTORIAL}")
    return math.factorial(n)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _round(x: Number, digits: Number | None = None) -> Number:
    """`round`, with `digits` clamped to the range that can change the result: Python's
    round(int, -n) builds 10**n, which takes minutes for n = 10**8."""
    if digits is None:
        return round(x)
    digits = int(digits)
    if isinstance(x, int):
        # x has at most `most` digits, so any digits <= -(most + 1) rounds it to 0.
        most = int(x.bit_length() * math.log10(2)) + 1
        return round(x, max(digits, -(most + 1)))
    return round(x, min(max(digits, -_FLOAT_DIGITS), _FLOAT_DIGITS))


_BINARY: dict[type, Callable[[Number, Number], Number]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: _divide, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _power,
}
_UNARY: dict[type, Callable[[Number], Number]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt, "log": _log, "ln": math.log, "log10": math.log10, "log2": math.log2,
    "exp": math.exp, "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin,
    "acos": math.acos, "atan": math.atan, "abs": abs, "round": _round, "floor": math.floor,
    "ceil": math.ceil, "factorial": _factorial, "min": min, "max": max, "pow": _power,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_THOUSANDS = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?!\d)")
_CALL_OPEN = re.compile(r"([A-Za-z_]\w*)\s*$")
_MULTI_ARGUMENT = {"log", "round", "min", "max", "pow"}


def _drop_thousands_commas(text: str) -> str:
    """`1,000` → `1000`, except directly inside calls of functions taking several arguments,
    where a comma separates arguments (`max(1,234)` stays two numbers)."""
    out: list[str] = []
    separates: list[bool] = []  # per open parenthesis: do its commas separate arguments?
    start = 0

    def flush(end: int) -> None:
        piece = text[start:end]
        if not (separates and separates[-1]):
            piece = _THOUSANDS.sub(lambda m: m[0].replace(",", ""), piece)
        out.append(piece)

    for i, char in enumerate(text):
        if char in "()":
            flush(i)
            start = i
            if char == "(":
                call = _CALL_OPEN.search(text[max(0, i - 40):i])
                separates.append(call is not None and call[1] in _MULTI_ARGUMENT)
            elif separates:
                separates.pop()
    flush(len(text))
    return "".join(out)


def normalize_expression(text: str) -> str:
    """Tidy an expression as agents write it: `^` for power, `×`/`÷`, thousands separators."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    text = text.rstrip("=").strip()
    text = text.replace("^", "**").replace("×", "*").replace("÷", "/").replace("−", "-")
    return _drop_thousands_commas(text)


def _evaluate(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise CalcError(f"{node.value!r} is not a number")
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _check_size(_BINARY[type(node.op)](_evaluate(node.left), _evaluate(node.right)))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalcError(f"unknown name {node.id!r}")
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in _FUNCTIONS:
            shown = name or ast.unparse(node.func)
            raise CalcError(f"unknown function {shown!r}; known: {', '.join(sorted(_FUNCTIONS))}")
        if node.keywords:
            raise CalcError(f"{name} takes positional arguments only")
        args = [_evaluate(arg) for arg in node.args]
        try:
            return _check_size(_FUNCTIONS[name](*args))
        except TypeError as err:
            raise CalcError(f"wrong arguments for {name}: {err}") from err
    if isinstance(node, ast.Tuple):
        raise CalcError("commas may only separate function arguments or thousands, as in 1,000")
    raise CalcError(f"{type(node).__name__} is not allowed in an arithmetic expression")


def evaluate(expression: str) -> Number:
    """Evaluate `expression`; raises CalcError (or ArithmeticError) with a readable message."""
    if len(expression) > MAX_INPUT_CHARS:
        raise CalcError(f"the expression is longer than {MAX_INPUT_CHARS} characters")
    text = normalize_expression(expression)
    if not text:
        raise CalcError("the expression is empty")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise CalcError(f"cannot parse {text!r} ({err.msg})") from err
    return _evaluate(tree)


def format_number(value: Number) -> str:
    """Integers exactly; floats to 12 significant digits, whole ones without `.0`."""
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "infinity" if value > 0 else "-infinity"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".12g")


class Calculator:
    """Evaluates arithmetic; every problem comes back as a `Calculator error: ...` line."""

    def __init__(self, spec: ToolSpec = CALCULATOR_SPEC) -> None:
        self.spec = spec

    def run(self, argument: str, ctx: ToolContext) -> str:
        try:
            return format_number(evaluate(argument))
        except CalcError as err:
            reason = str(err)
        except ZeroDivisionError:
            reason = "division by zero"
        except OverflowError:
            reason = "the result is too large"
        except ValueError as err:  # math domain errors, e.g. sqrt(-1)
            reason = f"{err} (the input is outside the function's domain)"
        except (RecursionError, MemoryError):
            reason = "the expression is nested too deeply"
        return f"Calculator error: {reason}."
